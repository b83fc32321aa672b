// The chat page in Firefox (Debian's firefox-esr, driven by puppeteer-core over WebDriver
// BiDi; playwright-core cannot drive a stock Firefox): at 1280 and 360 px wide it never
// scrolls sideways, joins a room, and chats both ways with a native `garou chat` client,
// once on the transport Firefox picks by itself (WebTransport with the gateway's certificate
// hash) and once forced onto the WebSocket fallback. No console errors.
// (At 360 px Firefox gave the composer's textarea its 20-column width as a flex minimum and
// the page scrolled sideways by 60 px; Chromium did not. web/style.css: min-width: 0.)
//
// Run: scripts/browser-test.sh firefox.test.mjs (it installs firefox-esr). Without
// /usr/bin/firefox-esr (or $FIREFOX) the tests skip, except under CI=true where they fail.
// BROWSER_TEST_WEB_FROM_DISK=1 tests web/ as on disk (no gateway rebuild after editing it).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import puppeteer from "puppeteer-core";
import { Diagnostics, NativeChat, ROOT, eventually, horizontalOverflow, serveStatic, shownMessages, startGateway } from "./lib.mjs";

const FIREFOX = process.env.FIREFOX || "/usr/bin/firefox-esr";
const WAIT = 10_000;
const WIDTHS = [1280, 360];

const missing = existsSync(FIREFOX) ? null : `${FIREFOX} is missing: apt-get install firefox-esr (scripts/browser-test.sh does)`;
if (missing && process.env.CI) throw new Error(missing);

const diag = new Diagnostics();
const cleanups = [];
const dataDir = mkdtempSync(path.join(os.tmpdir(), "garou-firefox-test-"));
// BROWSER_TEST_WEB_FROM_DISK=1: the page is served from web/ on disk (cross-origin, with
// ?gateway=) instead of the copy embedded in the gateway, as in pagekit.mjs.
const fromDisk = !!process.env.BROWSER_TEST_WEB_FROM_DISK;
let gw;
let browser;
let site;

before(async () => {
  if (missing) return;
  let config;
  if (fromDisk) {
    config = path.join(dataDir, "garou.toml");
    writeFileSync(config, `[http_server]\ncors_origins = ["*"]\n`);
    const dir = path.join(dataDir, "site");
    mkdirSync(dir);
    for (const f of ["index.html", "app.js", "style.css", "js"]) symlinkSync(path.join(ROOT, "web", f), path.join(dir, f));
    symlinkSync(path.join(ROOT, "wasm-client/pkg"), path.join(dir, "pkg"));
    site = await serveStatic(dir);
    cleanups.push(site.close);
  }
  gw = await startGateway(diag, { data: path.join(dataDir, "data"), config });
  diag.add("test", `gateway quic=${gw.quicAddr} http=${gw.http} sha256=${gw.sha256}`);
  browser = await puppeteer.launch({ browser: "firefox", executablePath: FIREFOX, headless: true });
  diag.add("test", `browser ${await browser.version()}`);
});

after(async () => {
  if (process.env.BROWSER_TEST_VERBOSE) diag.dump("everything (BROWSER_TEST_VERBOSE)");
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await browser?.close().catch(() => {});
  await gw?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** A test that skips without Firefox, fails on any page error, and dumps the logs on failure. */
function e2e(name, body, timeout = 60_000) {
  test(name, { timeout, skip: missing ?? false }, async (t) => {
    const mark = diag.lines.length;
    const errors = [];
    try {
      await body(t, errors);
      assert.deepEqual(errors, [], `errors in Firefox's console:\n${errors.join("\n")}`);
    } catch (e) {
      diag.add("test", `FAILED ${name}: ${e.stack || e}`);
      const lines = diag.lines;
      diag.lines = lines.slice(Math.max(0, mark - 20));
      diag.dump(`diagnostics of "${name}"`);
      diag.lines = lines;
      throw e;
    }
  });
}

/** A page in a fresh browser context, `width` px wide; its console errors go to `errors`. */
async function openPage(url, label, width, errors) {
  const context = await browser.createBrowserContext();
  cleanups.push(() => context.close());
  const page = await context.newPage();
  page.on("console", (msg) => {
    diag.add(`${label} console.${msg.type()}`, msg.text());
    if (msg.type() === "error") errors.push(`${label}: console.error: ${msg.text()}`);
  });
  page.on("pageerror", (err) => {
    diag.add(`${label} pageerror`, err.stack || String(err));
    errors.push(`${label}: pageerror: ${err.stack || err}`);
  });
  page.on("requestfailed", (req) => diag.add(`${label} requestfailed`, `${req.url()} ${req.failure()?.errorText}`));
  await page.setViewport({ width, height: 760 });
  diag.add(label, `open ${url} at ${width} px`);
  await page.goto(url);
  return page;
}

/** No sideways scrolling: the root's scrollWidth fits its clientWidth (and lib's wider check). */
async function assertNoSideways(page, what) {
  const { scrollWidth, clientWidth } = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth,
  }));
  assert.ok(scrollWidth <= clientWidth, `${what}: scrollWidth ${scrollWidth} > clientWidth ${clientWidth}`);
  assert.equal(await horizontalOverflow(page), 0, `${what} overflows sideways`);
}

/** The chat page's URL with the query `q`. */
function pageUrl(q = new URLSearchParams()) {
  if (!site) return `${gw.http}/?${q}`;
  q.set("gateway", gw.http);
  return `${site.url}/?${q}`;
}

const text = (page, testid) => page.$eval(`[data-testid="${testid}"]`, (el) => el.textContent.trim());

async function expectMessage(page, nick, body, what) {
  await eventually(
    async () => {
      const shown = await shownMessages(page);
      assert.ok(shown.some((m) => m.nick === nick && m.text === body), `no ${JSON.stringify(body)} by ${nick} in ${JSON.stringify(shown.map((m) => `${m.nick}: ${m.text}`))}`);
    },
    WAIT,
    what,
  );
}

/**
 * At each width: the sign-in screen and the joined chat do not scroll sideways; a message
 * typed in the page reaches a native client and one from the native client shows in the
 * page. Returns the transport the page reported at each width.
 */
async function chatBothWays(t, errors, transport) {
  const used = [];
  for (const width of WIDTHS) {
    const room = `ff-${transport ?? "auto"}-${width}`;
    const nick = `fox${width}${transport ? "ws" : ""}`;
    const nat = new NativeChat(gw, `nat${width}${transport ? "ws" : ""}`, room, diag);
    cleanups.push(async () => nat.kill());

    const login = await openPage(pageUrl(), `login ${width}`, width, errors);
    await login.waitForSelector('[data-testid="nick"]', { visible: true });
    await assertNoSideways(login, `the sign-in screen at ${width} px`);
    await login.close();

    const q = new URLSearchParams({ nick, room });
    if (transport) q.set("transport", transport);
    const page = await openPage(pageUrl(q), `page ${nick}`, width, errors);
    await eventually(async () => assert.equal(await text(page, "room"), room), WAIT, `${nick}'s page to join ${room}`);
    const tr = await text(page, "transport");
    const title = await page.$eval('[data-testid="conn"]', (el) => el.title);
    used.push(`${width} px: ${tr}`);
    t.diagnostic(`Firefox at ${width} px${transport ? ` (?transport=${transport})` : ""}: ${tr} (${title})`);
    diag.add("test", `${nick} transport ${tr}: ${title}`);
    if (transport) assert.equal(tr, transport);
    else assert.equal(tr, "webtransport", `Firefox fell back: ${title}`);

    const fromPage = `hello from Firefox at ${width} px ${Date.now()}`;
    await page.type('[data-testid="message-input"]', fromPage);
    await page.click('[data-testid="send"]');
    await nat.waitForLine(`[#${room}] <${nick}> ${fromPage}`);
    await expectMessage(page, nick, fromPage, `${nick}'s own message to show`);

    const fromNative = `native to Firefox ${width} ${Date.now()}`;
    nat.say(fromNative);
    await expectMessage(page, nat.nick, fromNative, `the native message to show in ${nick}'s page`);

    // With messages in the log the chat still fits the width.
    await assertNoSideways(page, `the chat at ${width} px`);
    assert.equal(await nat.quit(), 0, `garou chat ${nat.nick} exit code`);
    await page.close();
  }
  return used;
}

e2e("Firefox: the page at 1280 and 360 px on its own transport chats with a native client", async (t, errors) => {
  await chatBothWays(t, errors, null);
});

e2e("Firefox: the page at 1280 and 360 px forced onto WebSocket chats with a native client", async (t, errors) => {
  await chatBothWays(t, errors, "websocket");
});
