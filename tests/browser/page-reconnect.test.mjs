// The chat page recovers by itself: two pages and a native client in a room, the gateway
// is SIGKILLed and started again on the same ports and data (a new self-signed
// certificate, as by default). Without a click both pages reconnect (fetching the new
// certificate hash), rejoin, catch up, send what was written while away, and show every
// message exactly once, in order (a reload afterwards shows the same log from history) —
// once over WebTransport and once forced onto WebSocket.
//
// Run: scripts/browser-test.sh page-reconnect.test.mjs
// BROWSER_TEST_SCREENSHOTS=DIR keeps screenshots taken during and after the reconnect.

import assert from "node:assert/strict";
import path from "node:path";
import { eventually, shownMessages } from "./lib.mjs";
import { WAIT, expectLog, fixture, sendFrom } from "./pagekit.mjs";

// While the gateway is down the browser logs its failed connection attempts itself.
const ctx = fixture({
  allowErrors: [/ERR_CONNECTION_REFUSED|ERR_QUIC_PROTOCOL_ERROR|QUIC_|WebTransport|WebSocket connection to .* failed|Failed to load resource|ERR_SOCKET_NOT_CONNECTED|net::ERR_/],
});

/** The connection state the page shows: "up", "reconnecting", "down". */
const connState = (page) => page.getByTestId("conn").getAttribute("data-state");

async function shot(page, name) {
  if (!process.env.BROWSER_TEST_SCREENSHOTS) return;
  await page.screenshot({ path: path.join(process.env.BROWSER_TEST_SCREENSHOTS, `${name}.png`) });
}

for (const transport of ["webtransport", "websocket"]) {
  ctx.e2e(`two pages on ${transport} recover by themselves from a gateway crash and restart`, async () => {
    const room = `crash-${transport}`;
    const natNick = transport === "webtransport" ? "nwt" : "nws";
    const [a, b] = transport === "webtransport" ? ["amy", "ben"] : ["ada", "bob"];
    let nat = ctx.native(natNick, room);
    const pa = await ctx.chatPage({ nick: a, room, transport });
    const pb = await ctx.chatPage({ nick: b, room, transport });
    assert.equal((await pa.getByTestId("transport").textContent()).trim(), transport);

    const texts = [];
    const say = async (page, text) => {
      await sendFrom(page, text);
      texts.push(text);
    };
    await say(pa, `${a} before`);
    await expectLog(pb, texts, `${b} sees ${a}`);
    await say(pb, `${b} before`);
    nat.say(`${natNick} before`);
    texts.push(`${natNick} before`);
    await expectLog(pa, texts, `${a} before the crash`);
    await expectLog(pb, texts, `${b} before the crash`);

    const sha = ctx.gw.sha256;
    await ctx.kill();
    nat.kill();
    // Each page notices and says so.
    for (const p of [pa, pb]) {
      await eventually(async () => assert.equal(await connState(p), "reconnecting"), 60_000, "the page to show reconnecting");
    }
    // Written while the gateway is down: shown as pending, sent once reconnected.
    await sendFrom(pa, `${a} while down`);
    texts.push(`${a} while down`);
    await pa.getByTestId("pending-message").filter({ hasText: `${a} while down` }).waitFor({ timeout: WAIT });
    assert.equal(await pa.getByTestId("banner").isVisible(), true);
    await shot(pa, `reconnect-${transport}-during`);

    await ctx.restart();
    const restarted = Date.now();
    assert.notEqual(ctx.gw.sha256, sha, "the restarted gateway has a new certificate");
    // The native client (pinned to the old certificate) comes back as a new process and
    // writes at once, most likely before the pages are back.
    nat = ctx.native(natNick, room);
    for (let i = 1; i <= 3; i++) {
      nat.say(`${natNick} after ${i}`);
      texts.push(`${natNick} after ${i}`);
    }
    await nat.waitForLine(`[#${room}] <${natNick}> ${natNick} after 3`);

    for (const p of [pa, pb]) {
      await eventually(async () => assert.equal(await connState(p), "up"), 30_000, "the page to reconnect by itself");
    }
    // The message written while down was sent exactly once; the order of the two lines
    // written around the same time (the page's and the native client's) is the server's.
    await eventually(
      async () => {
        const shown = (await shownMessages(pa)).map((m) => m.text);
        assert.deepEqual([...shown].sort(), [...texts].sort());
      },
      20_000,
      `${a} to show every message once`,
    );
    const order = (await shownMessages(pa)).map((m) => m.text);
    await expectLog(pb, order, `${b} to show the same log as ${a}`, 20_000);
    assert.equal(await pa.getByTestId("pending-message").count(), 0);
    const away = texts.length - texts.indexOf(`${a} while down`);
    console.log(
      `${transport}: both pages show all ${order.length} messages once, in one order ` +
        `(${away} written while they were away) ${Date.now() - restarted} ms after the gateway restarted`,
    );

    // And live chat goes on both ways.
    await say(pb, `${b} after`);
    order.push(`${b} after`);
    await expectLog(pa, order, `${a} after the reconnect`);
    await expectLog(pb, order, `${b} after the reconnect`);
    await nat.waitForLine(`[#${room}] <${b}> ${b} after`);
    // Presence is live again: both pages see each other online.
    await eventually(
      async () => assert.equal(await pa.locator(`[data-testid="member"][data-nick="${b}"]`).getAttribute("data-online"), "true"),
      WAIT,
      `${b} online on ${a}'s page`,
    );
    assert.equal((await pa.getByTestId("transport").textContent()).trim(), transport);
    await shot(pa, `reconnect-${transport}-after`);
    // Reloaded after the recovery, the page shows the same log again, from history.
    await pa.reload();
    await eventually(async () => assert.equal(await pa.getByTestId("room").textContent(), room), WAIT, `${a}'s page to rejoin after a reload`);
    await expectLog(pa, order, `${a} after a reload`);
    assert.equal(await nat.quit(), 0);
  }, 120_000);
}
