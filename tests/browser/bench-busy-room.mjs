// Benchmark (not a test): how the chat page copes with a busy room. A native client posts
// N messages at once (command rates lifted); one chat page in the room records, with a
// MutationObserver, when the first and the last of them appear; then it sends one message
// and records the time from the click to its display. Prints the figures and the number
// of DOM nodes. Timing is reported, never asserted.
//
// Run (after cargo build -p garou-cli):
//   node bench-busy-room.mjs [N=5000] [transport=webtransport]
// GAROU_BIN picks another gateway binary (e.g. an older build, whose page is embedded).

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Diagnostics, NativeChat, eventually, launchBrowser, openPage, startGateway } from "./lib.mjs";
import { FAST_CONFIG } from "./pagekit.mjs";

const N = Number(process.argv[2] || 5000);
const transport = process.argv[3] || "webtransport";
const diag = new Diagnostics();
const dir = mkdtempSync(path.join(os.tmpdir(), "garou-bench-page-"));
writeFileSync(path.join(dir, "garou.toml"), FAST_CONFIG);
const gw = await startGateway(diag, { data: path.join(dir, "data"), config: path.join(dir, "garou.toml") });
const browser = await launchBrowser();
const room = "busy";
let natv;
try {
  // Unpaced: the gateway's command limits are lifted (FAST_CONFIG), and the default client
  // pacing (90 frames/s) would spread the burst over a minute.
  natv = new NativeChat(gw, "flood", room, diag, ["--rate", "0"]);
  await natv.waitForLine(`* joined #${room}`, 10_000).catch(() => {});
  const q = new URLSearchParams({ nick: "watcher", room, transport });
  const page = await openPage(browser, `${gw.http}/?${q}`, "watcher", diag);
  await eventually(async () => {
    if ((await page.getByTestId("room").textContent()) !== room) throw new Error("not joined");
  }, 15_000, "the page to join");
  await page.waitForTimeout(500);

  // Watch the log for the first and last burst message, and later the probe.
  await page.evaluate((n) => {
    const box = document.getElementById("messages");
    const marks = (window.__bench = { first: 0, last: 0, probe: 0, probeText: "" });
    const seen = (text) => {
      if (!marks.first && text.startsWith("burst ")) marks.first = performance.now();
      if (!marks.last && text === `burst ${n - 1}`) marks.last = performance.now();
      if (marks.probeText && !marks.probe && text === marks.probeText) marks.probe = performance.now();
    };
    new MutationObserver((records) => {
      for (const r of records) {
        for (const node of r.addedNodes) {
          if (node.nodeType !== 1) continue;
          const msgs = node.matches('[data-testid="message"]') ? [node] : node.querySelectorAll('[data-testid="message"]');
          for (const m of msgs) seen(m.querySelector('[data-testid="message-text"]')?.firstChild?.textContent ?? "");
        }
      }
    }).observe(box, { childList: true, subtree: true });
  }, N);

  const sent = Date.now();
  natv.child.stdin.write(Array.from({ length: N }, (_, i) => `burst ${i}\n`).join(""));
  await natv.waitForLine(`[#${room}] <flood> burst ${N - 1}`, 120_000);
  const echoed = Date.now() - sent;
  const marks = await eventually(
    async () => {
      const m = await page.evaluate(() => window.__bench);
      if (!m.last) throw new Error("the last burst message is not shown yet");
      return m;
    },
    60_000,
    "the last burst message on the page",
  );
  console.log(`burst: the last of ${N} shown ${Math.round(marks.last - marks.first)} ms after the first`);
  await page.waitForTimeout(300);

  // One send after the burst: from the click to the message in the log.
  const probe = `probe ${Date.now()}`;
  await page.getByTestId("message-input").fill(probe);
  const clicked = await page.evaluate((text) => {
    window.__bench.probeText = text;
    const t = performance.now();
    document.getElementById("send").click();
    return t;
  }, probe);
  const probeAt = await eventually(
    async () => {
      const m = await page.evaluate(() => window.__bench.probe);
      if (!m) throw new Error("not shown yet");
      return m;
    },
    30_000,
    "the probe message",
  );
  const dom = await page.evaluate(() => document.getElementsByTagName("*").length);
  const inMemory = await page.evaluate((r) => window.__garou?.state.rooms.get(r)?.entries.filter((e) => e.type === "msg").length ?? "n/a", room);
  console.log(
    JSON.stringify({
      messages: N,
      transport,
      gateway_echo_to_sender_ms: echoed,
      page_first_to_last_shown_ms: Math.round(marks.last - marks.first),
      send_click_to_shown_ms: Math.round(probeAt - clicked),
      dom_nodes_after: dom,
      messages_in_page_memory: inMemory,
    }),
  );
} catch (e) {
  diag.lines = diag.lines.filter((l) => !l.includes("native flood stdout"));
  diag.dump("bench failed");
  throw e;
} finally {
  natv?.kill();
  await browser.close();
  await gw.stop();
  rmSync(dir, { recursive: true, force: true });
}
