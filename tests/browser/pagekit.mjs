// Shared set-up of the chat page's own test files (history, layout, reconnect): a gateway
// with its store in a fresh temporary directory, one browser, chat pages, and checks that
// a page shows each message once and in order, and reported no errors.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Diagnostics, NativeChat, ROOT, eventually, launchBrowser, openPage, openedPages, pageErrors, serveStatic, shownMessages, startGateway } from "./lib.mjs";

export const WAIT = 10_000;

/** Command rates lifted: tests that post many messages on purpose are not throttled. */
export const FAST_CONFIG = `
[limits]
commands_per_sec = 100000.0
command_burst = 100000
commands_per_sec_per_user = 100000.0
command_burst_per_user = 100000
commands_per_sec_per_ip = 100000.0
command_burst_per_ip = 100000
`;

/**
 * One file's fixture: `ctx.gw` (restartable: `ctx.restart()`), `ctx.browser`, `ctx.diag`,
 * and `ctx.e2e(name, body)` which fails on page errors and on messages shown twice or out
 * of order. `allowErrors`: console lines expected in this file (e.g. while the gateway is down).
 */
export function fixture({ config = FAST_CONFIG, allowErrors = [] } = {}) {
  const ctx = { diag: new Diagnostics(), cleanups: [], gw: null, browser: null, site: null };
  const dir = mkdtempSync(path.join(os.tmpdir(), "garou-page-test-"));
  const data = path.join(dir, "data");
  const configFile = path.join(dir, "garou.toml");
  // BROWSER_TEST_WEB_FROM_DISK=1: the page is served from web/ on disk (cross-origin, with
  // ?gateway=) instead of the copy embedded in the gateway: no gateway rebuild after editing it.
  const fromDisk = !!process.env.BROWSER_TEST_WEB_FROM_DISK;
  writeFileSync(configFile, fromDisk ? `[http_server]\ncors_origins = ["*"]\n${config}` : config);

  ctx.startGateway = async (ports = {}) => {
    ctx.gw = await startGateway(ctx.diag, { data, config: configFile, ...ports });
    ctx.diag.add("test", `gateway quic=${ctx.gw.quicAddr} http=${ctx.gw.http} sha256=${ctx.gw.sha256}`);
    return ctx.gw;
  };
  /** SIGKILL the gateway (as a crash), then start it again on the same ports and data. */
  ctx.kill = () => ctx.gw.kill();
  ctx.restart = () => ctx.startGateway({ quic: ctx.gw.quicAddr, http: ctx.gw.httpAddr });

  before(async () => {
    await ctx.startGateway();
    if (fromDisk) {
      const site = path.join(dir, "site");
      mkdirSync(site);
      for (const f of ["index.html", "app.js", "style.css", "js"]) symlinkSync(path.join(ROOT, "web", f), path.join(site, f));
      symlinkSync(path.join(ROOT, "wasm-client/pkg"), path.join(site, "pkg"));
      ctx.site = await serveStatic(site);
      ctx.cleanups.push(ctx.site.close);
    }
    ctx.browser = await launchBrowser();
  });
  after(async () => {
    if (process.env.BROWSER_TEST_VERBOSE) ctx.diag.dump("everything (BROWSER_TEST_VERBOSE)");
    // Each cleanup is bounded: one that never settles must not hold the run (and CI) open.
    for (const c of ctx.cleanups.reverse()) {
      let timer;
      const late = new Promise((r) => (timer = setTimeout(() => r(console.error("# a cleanup took over 10 s; going on")), 10_000)));
      await Promise.race([c().catch(() => {}), late]);
      clearTimeout(timer);
    }
    await ctx.browser?.close().catch(() => {});
    await ctx.gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  ctx.e2e = (name, body, timeout = 60_000) =>
    test(name, { timeout }, async (t) => {
      const mark = ctx.diag.lines.length;
      const pagesMark = openedPages.length;
      try {
        await body(t);
        const errors = pageErrors(pagesMark, allowErrors);
        assert.deepEqual(errors, [], `errors in the pages' consoles:\n${errors.join("\n")}`);
        for (const { page } of openedPages.slice(pagesMark)) if (!page.isClosed()) await shownMessages(page);
      } catch (e) {
        ctx.diag.add("test", `FAILED ${name}: ${e.stack || e}`);
        const lines = ctx.diag.lines;
        ctx.diag.lines = lines.slice(Math.max(0, mark - 20));
        ctx.diag.dump(`diagnostics of "${name}"`);
        ctx.diag.lines = lines;
        throw e;
      }
    });

  /** The chat page's URL with the query `q`. */
  ctx.url = (q = new URLSearchParams()) => {
    if (!ctx.site) return `${ctx.gw.http}/?${q}`;
    q.set("gateway", ctx.gw.http);
    return `${ctx.site.url}/?${q}`;
  };

  /** A chat page of `nick` in `room` (joined), optionally on one transport and viewport. */
  ctx.chatPage = async ({ nick, room, transport, viewport }) => {
    const q = new URLSearchParams({ nick, room });
    if (transport) q.set("transport", transport);
    const page = await openPage(ctx.browser, ctx.url(q), `page ${nick}`, ctx.diag, viewport ? { viewport } : undefined);
    ctx.cleanups.push(() => page.context().close());
    await eventually(async () => assert.equal(await page.getByTestId("room").textContent(), room), WAIT, `${nick}'s page to join ${room}`);
    return page;
  };

  /** `garou chat` in `room` (trusting the current gateway's certificate). */
  ctx.native = (nick, room) => {
    const n = new NativeChat(ctx.gw, nick, room, ctx.diag);
    ctx.cleanups.push(async () => n.kill());
    return n;
  };
  return ctx;
}

export async function sendFrom(page, text) {
  await page.getByTestId("message-input").fill(text);
  await page.getByTestId("send").click();
}

/** Wait until the page shows exactly `texts` (in this order, each once) as its messages. */
export async function expectLog(page, texts, what, timeout = WAIT) {
  return eventually(
    async () => {
      const shown = (await shownMessages(page)).map((m) => m.text);
      assert.deepEqual(shown, texts);
      return shown;
    },
    timeout,
    what,
  );
}

/** Scroll the log to its top until the room's start shows (older pages load on the way). */
export async function scrollToStart(page, timeout = WAIT) {
  await eventually(
    async () => {
      await page.evaluate(() => {
        const box = document.getElementById("messages");
        box.scrollTop = 0;
        box.dispatchEvent(new Event("scroll"));
      });
      assert.equal(await page.getByTestId("log-start").getAttribute("data-state"), "start");
    },
    timeout,
    "the start of the room to show",
  );
}
