// End-to-end: the gateway, the chat page (web/) with the wasm client in headless Chromium,
// native `garou chat` clients, and the example front-end app (examples/web-app/).
//
// Run: scripts/browser-test.sh (or `node --test` here after `cargo build -p garou-cli`).
// A failing test prints every page's console, the gateway's log and the native clients'
// output since it started; BROWSER_TEST_VERBOSE=1 prints all of it at the end.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { ROOT, Diagnostics, NativeChat, eventually, launchBrowser, openPage, openedPages, pageErrors, serveStatic, shownMessages, startGateway } from "./lib.mjs";

const WAIT = 10_000; // any single expectation
const diag = new Diagnostics();
let gw;
let browser;
const cleanups = [];

// A fresh store per run: the page shows a room's history, so an old run's messages would show.
const dataDir = mkdtempSync(path.join(os.tmpdir(), "garou-chat-test-"));

before(async () => {
  gw = await startGateway(diag, { data: path.join(dataDir, "data") });
  browser = await launchBrowser();
  diag.add("test", `gateway quic=${gw.quicAddr} http=${gw.http} sha256=${gw.sha256}`);
});

after(async () => {
  if (process.env.BROWSER_TEST_VERBOSE) diag.dump("everything (BROWSER_TEST_VERBOSE)");
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await browser?.close().catch(() => {});
  await gw?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/**
 * Run a test body; on failure print every page's console, the gateway's and the natives'
 * output. A page error (uncaught exception or console.error) in a page the test opened
 * fails it too.
 */
function e2e(name, body, timeout = 40_000) {
  test(name, { timeout }, async (t) => {
    const mark = diag.lines.length;
    const pagesMark = openedPages.length;
    try {
      await body(t);
      // (The example app is not the chat page: its console is its own business.)
      const errors = pageErrors(pagesMark).filter((e) => !e.startsWith("example"));
      assert.deepEqual(errors, [], `errors in the pages' consoles:\n${errors.join("\n")}`);
      // No message shown twice or out of order on any chat page the test opened.
      for (const { page, label } of openedPages.slice(pagesMark)) {
        if (!page.isClosed() && !label.startsWith("example")) await shownMessages(page);
      }
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

// ------------------------------------------------------------------ chat page helpers

async function chatPage({ nick, room, transport }) {
  const q = new URLSearchParams({ nick, room });
  if (transport) q.set("transport", transport);
  const page = await openPage(browser, `${gw.http}/?${q}`, `page ${nick}`, diag);
  cleanups.push(() => page.context().close());
  await eventually(
    async () => assert.equal(await page.getByTestId("room").textContent(), room),
    WAIT,
    `${nick}'s page to join ${room}`,
  );
  return page;
}

async function transportOf(page) {
  return (await page.getByTestId("transport").textContent()).trim();
}

async function sendFrom(page, text) {
  await page.getByTestId("message-input").fill(text);
  await page.getByTestId("send").click();
}

async function expectMessage(page, nick, text, label) {
  const msg = page.getByTestId("messages").getByTestId("message").filter({ hasText: text }).filter({ hasText: nick });
  try {
    await msg.first().waitFor({ timeout: WAIT });
  } catch (e) {
    const log = await page.getByTestId("messages").innerText().catch(() => "?");
    throw new Error(`${label}: no message "${text}" by ${nick} (log: ${JSON.stringify(log)})`, { cause: e });
  }
}

async function expectMembers(page, nicks, label) {
  await eventually(
    async () => {
      const members = await page.getByTestId("members").getByTestId("member").allInnerTexts();
      for (const n of nicks) assert.ok(members.some((m) => m.includes(n)), `${n} not in [${members.join(" | ")}]`);
      assert.equal(members.length, nicks.length, `members: [${members.join(" | ")}]`);
    },
    WAIT,
    `${label}'s member list to show ${nicks.join(", ")}`,
  );
}

/** Type on `from` until `to`'s typing indicator names `nick` (datagrams may be lost: retry). */
async function expectTyping(from, to, nick) {
  const input = from.getByTestId("message-input");
  const indicator = to.getByTestId("typing");
  await eventually(
    async () => {
      await input.pressSequentially("x"); // one input event: a typing datagram (at most 1/s)
      await eventually(
        async () => assert.match(await indicator.textContent(), new RegExp(`${nick}.*typing`)),
        1_500,
        "the typing indicator",
      );
    },
    WAIT,
    `${nick} typing to show on the other page`,
  );
  await input.fill("");
  // It goes away on its own after ~3 s without more typing.
  await eventually(async () => assert.equal((await indicator.textContent()).trim(), ""), 6_000, "the typing indicator to clear");
}

/** Two pages and a native client in one room: each message reaches the two others. */
async function threeWay(a, b, native, room) {
  await expectMembers(a.page, [a.nick, b.nick, native.nick], a.nick);
  await expectMembers(b.page, [a.nick, b.nick, native.nick], b.nick);

  const fromA = `hello from ${a.nick} ${Date.now()}`;
  await sendFrom(a.page, fromA);
  await expectMessage(b.page, a.nick, fromA, `${b.nick}'s page`);
  await native.waitForLine(`[#${room}] <${a.nick}> ${fromA}`);
  await expectMessage(a.page, a.nick, fromA, `${a.nick}'s own page`);

  const fromB = `hi from ${b.nick} ${Date.now()}`;
  await sendFrom(b.page, fromB);
  await expectMessage(a.page, b.nick, fromB, `${a.nick}'s page`);
  await native.waitForLine(`[#${room}] <${b.nick}> ${fromB}`);

  const fromNative = `native says hi ${Date.now()}`;
  native.say(fromNative);
  await expectMessage(a.page, native.nick, fromNative, `${a.nick}'s page`);
  await expectMessage(b.page, native.nick, fromNative, `${b.nick}'s page`);

  await expectTyping(a.page, b.page, a.nick);

  assert.equal(await native.quit(), 0, `garou chat ${native.nick} exit code`);
  // The native client is gone: the pages see it leave or go offline.
  for (const p of [a, b]) {
    await eventually(
      async () => {
        const m = p.page.getByTestId("members").locator(`[data-testid="member"][data-nick="${native.nick}"]`);
        const n = await m.count();
        assert.ok(n === 0 || (await m.getAttribute("data-online")) === "false", `${native.nick} still online`);
      },
      WAIT,
      `${p.nick}'s page to see ${native.nick} go`,
    );
  }
}

function native(nick, room) {
  const n = new NativeChat(gw, nick, room, diag);
  cleanups.push(async () => n.kill());
  return n;
}

// ------------------------------------------------------------------ tests

e2e("two pages on WebTransport and a native client chat in one room", async () => {
  const room = "general";
  const carol = native("carol", room);
  const [alice, bob] = await Promise.all([chatPage({ nick: "alice", room }), chatPage({ nick: "bob", room })]);
  assert.equal(await transportOf(alice), "webtransport");
  assert.equal(await transportOf(bob), "webtransport");
  await threeWay({ page: alice, nick: "alice" }, { page: bob, nick: "bob" }, carol, room);
});

e2e("one page forced onto the WebSocket fallback chats with a WebTransport page and a native client", async () => {
  const room = "fallback";
  const frank = native("frank", room);
  const [dave, erin] = await Promise.all([
    chatPage({ nick: "dave", room, transport: "websocket" }),
    chatPage({ nick: "erin", room }),
  ]);
  assert.equal(await transportOf(dave), "websocket");
  assert.equal(await transportOf(erin), "webtransport");
  await threeWay({ page: dave, nick: "dave" }, { page: erin, nick: "erin" }, frank, room);
});

e2e("the page shows a taken nick as a friendly error", async () => {
  const room = "nicks";
  const first = await chatPage({ nick: "gus", room });
  const page = await openPage(browser, `${gw.http}/?nick=gus&room=${room}`, "page gus#2", diag);
  cleanups.push(() => page.context().close());
  const error = page.getByTestId("login-error");
  await error.waitFor({ state: "visible", timeout: WAIT });
  assert.match(await error.innerText(), /gus.*already in use/i);
  assert.equal(await page.getByTestId("nick").inputValue(), "gus");
  // Another nick from the form works.
  await page.getByTestId("nick").fill("gus2");
  await page.getByRole("button", { name: "Connect" }).click();
  await eventually(async () => assert.equal(await page.getByTestId("room").textContent(), room), WAIT, "gus2 to join");
  await expectMembers(first, ["gus", "gus2"], "gus");
});

e2e("edit and react on the page reach the other page", async () => {
  const room = "edits";
  const [hal, ivy] = await Promise.all([chatPage({ nick: "hal", room }), chatPage({ nick: "ivy", room })]);
  await expectMembers(hal, ["hal", "ivy"], "hal");
  await sendFrom(hal, "frist post");
  await expectMessage(ivy, "hal", "frist post", "ivy's page");

  // By id: while edited, the text is in a textarea and no longer in the element's text.
  const id = await hal.getByTestId("message").filter({ hasText: "frist post" }).getAttribute("data-id");
  const mine = hal.locator(`[data-testid="message"][data-id="${id}"]`);
  await mine.hover();
  await mine.getByTestId("edit").click();
  const editBox = mine.getByTestId("edit-input");
  await editBox.fill("first post");
  await editBox.press("Enter");
  await expectMessage(ivy, "hal", "first post", "ivy's page after the edit");
  await eventually(
    async () => assert.match(await ivy.getByTestId("message").filter({ hasText: "first post" }).innerText(), /edited/),
    WAIT,
    "the edited mark",
  );

  const theirs = ivy.getByTestId("message").filter({ hasText: "first post" });
  await theirs.hover();
  await theirs.getByRole("button", { name: "React 👍" }).click();
  for (const [p, who] of [[hal, "hal"], [ivy, "ivy"]]) {
    await eventually(
      async () => {
        const chip = p.getByTestId("message").filter({ hasText: "first post" }).getByTestId("reaction");
        assert.equal(await chip.getAttribute("data-emoji"), "👍");
        assert.equal((await chip.innerText()).replace(/\s+/g, ""), "👍1");
      },
      WAIT,
      `the 👍 reaction on ${who}'s page`,
    );
  }
});

/** A `w`x`h` RGBA PNG (a diagonal gradient), built by hand. */
function png(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA, no interlace
  const raw = Buffer.alloc((w * 4 + 1) * h);
  for (let y = 0; y < h; y++) {
    const row = y * (w * 4 + 1); // filter byte 0, then the pixels
    for (let x = 0; x < w; x++) {
      raw.set([79 + ((x * 150) / w) | 0, 70 + ((y * 150) / h) | 0, 229, 255], row + 1 + x * 4);
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

e2e("an image attached on a WebTransport page shows inline on a WebSocket page", async () => {
  const room = "pictures";
  const [lea, max] = await Promise.all([
    chatPage({ nick: "lea", room }),
    chatPage({ nick: "max", room, transport: "websocket" }),
  ]);
  assert.equal(await transportOf(lea), "webtransport");
  assert.equal(await transportOf(max), "websocket");
  await expectMembers(lea, ["lea", "max"], "lea");

  // The composer's text becomes the caption.
  const caption = `a tiny square ${Date.now()}`;
  await lea.getByTestId("message-input").fill(caption);
  await lea.getByTestId("attach").setInputFiles({ name: "square.png", mimeType: "image/png", buffer: png(16, 16) });

  for (const [page, who] of [[max, "max"], [lea, "lea"]]) {
    await expectMessage(page, "lea", caption, `${who}'s page`);
    const img = page.getByTestId("message").filter({ hasText: caption }).getByTestId("attachment");
    await img.waitFor({ timeout: WAIT });
    assert.match(await img.getAttribute("src"), /^\/api\/uploads\/[0-9a-f]{32}\?ticket=[0-9a-f]+$/);
    await eventually(
      async () => {
        const size = await img.evaluate((el) => ({ complete: el.complete, w: el.naturalWidth, h: el.naturalHeight }));
        assert.deepEqual(size, { complete: true, w: 16, h: 16 });
      },
      WAIT,
      `the image to load on ${who}'s page`,
    );
    // A click opens the full image in a new tab.
    const link = img.locator("xpath=..");
    assert.equal(await link.getAttribute("target"), "_blank");
    assert.equal(await link.getAttribute("href"), await img.getAttribute("src"));
  }
  // The upload indicator is gone and the composer is cleared.
  assert.equal(await lea.getByTestId("upload").count(), 0);
  assert.equal(await lea.getByTestId("message-input").inputValue(), "");
  if (process.env.BROWSER_TEST_SCREENSHOTS) {
    await max.screenshot({ path: path.join(process.env.BROWSER_TEST_SCREENSHOTS, "attachment-max.png") });
  }
});

// The example app twice: as it is (an import map, no bundler) and built with `vite build`,
// so both ways of using the npm package stay working.
async function exampleApp(t, { vite }) {
  const dir = path.join(ROOT, "examples/web-app");
  if (!existsSync(path.join(dir, "package.json"))) {
    t.skip("examples/web-app does not exist yet");
    return;
  }
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: dir, stdio: "inherit", timeout: 120_000 });
  if (vite) execFileSync("npm", ["run", "build", "--silent"], { cwd: dir, stdio: "inherit", timeout: 120_000 });
  const server = await serveStatic(vite ? path.join(dir, "dist") : dir);
  cleanups.push(server.close);

  const room = vite ? "apps-vite" : "apps";
  const [app, other] = vite ? ["vi", "lou"] : ["jo", "kim"];
  const kim = native(other, room);
  const q = new URLSearchParams({ gateway: gw.http, nick: app, room });
  const page = await openPage(browser, `${server.url}/?${q}`, `example app ${app}`, diag);
  cleanups.push(() => page.context().close());

  // The app enables its composer once it has joined the room.
  await eventually(async () => assert.ok(await page.getByTestId("send").isEnabled()), 15_000, "the example app to join");
  const fromApp = `from the example app ${Date.now()}`;
  await sendFrom(page, fromApp);
  await kim.waitForLine(`[#${room}] <${app}> ${fromApp}`);
  const fromKim = `native to app ${Date.now()}`;
  kim.say(fromKim);
  const msg = page.getByTestId("message").filter({ hasText: fromKim });
  await msg.first().waitFor({ timeout: WAIT });
  assert.match(await msg.first().innerText(), new RegExp(other));
  assert.equal(await kim.quit(), 0);
}

e2e("the example front-end app (examples/web-app) connects and exchanges messages", (t) => exampleApp(t, { vite: false }));

e2e("the example app built with vite build connects and exchanges messages", (t) => exampleApp(t, { vite: true }), 120_000);
