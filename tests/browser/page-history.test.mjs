// The chat page's log: recent history when a room opens (load and reload), older pages
// when scrolled to the top, live events merged with history by offset (no message twice,
// none missing, in order), and a layout that never scrolls sideways.
//
// Run: scripts/browser-test.sh page-history.test.mjs

import assert from "node:assert/strict";
import { eventually, horizontalOverflow, openPage, shownMessages } from "./lib.mjs";
import { WAIT, expectLog, fixture, scrollToStart, sendFrom } from "./pagekit.mjs";

const ctx = fixture();

ctx.e2e("a reloaded page shows the room's history, and a message sent during the reload", async () => {
  const room = "history";
  const nat = ctx.native("nat", room);
  const ann = await ctx.chatPage({ nick: "ann", room });
  const texts = [];
  for (let i = 1; i <= 12; i++) {
    const t = `native line ${i}`;
    nat.say(t);
    texts.push(t);
    await nat.waitForLine(`[#${room}] <nat> ${t}`);
  }
  for (let i = 1; i <= 3; i++) {
    const t = `page line ${i}`;
    await sendFrom(ann, t);
    texts.push(t);
    await expectLog(ann, texts, "ann's own messages");
  }

  // Reload; while the page is away the native client writes once more.
  const reloaded = ann.reload();
  const during = "written while ann reloads";
  nat.say(during);
  texts.push(during);
  await reloaded;
  await eventually(async () => assert.equal(await ann.getByTestId("room").textContent(), room), WAIT, "ann to rejoin");
  await expectLog(ann, texts, "the whole history after the reload");
  // A fresh page of someone else shows it too, and live messages continue after it.
  const bea = await ctx.chatPage({ nick: "bea", room });
  await expectLog(bea, texts, "bea's page on opening the room");
  await sendFrom(bea, "after history");
  texts.push("after history");
  await expectLog(ann, texts, "ann's page, live after history");
  await expectLog(bea, texts, "bea's page, live after history");
  assert.equal(await nat.quit(), 0);
});

ctx.e2e("scrolling to the top loads older history pages until the start of the room", async () => {
  const room = "long";
  const nat = ctx.native("old", room);
  const texts = [];
  for (let i = 1; i <= 180; i++) texts.push(`old message ${String(i).padStart(3, "0")}`);
  for (const t of texts) nat.say(t);
  await nat.waitForLine(`[#${room}] <old> ${texts.at(-1)}`);

  const cy = await ctx.chatPage({ nick: "cy", room });
  // First only the newest page is there.
  await eventually(
    async () => {
      const shown = (await shownMessages(cy)).map((m) => m.text);
      assert.ok(shown.length >= 20 && shown.length < texts.length, `${shown.length} shown`);
      assert.deepEqual(shown, texts.slice(-shown.length));
    },
    WAIT,
    "the newest page of history",
  );
  await scrollToStart(cy, 20_000);
  await expectLog(cy, texts, "every message after scrolling to the start");
  assert.equal(await nat.quit(), 0);
});

ctx.e2e("the page never scrolls sideways (360, 800 and 1280 px wide)", async () => {
  const room = "narrow";
  for (const width of [360, 800, 1280]) {
    const viewport = { width, height: 760 };
    // The sign-in screen.
    const login = await openPage(ctx.browser, ctx.url(), `login ${width}`, ctx.diag, { viewport });
    ctx.cleanups.push(() => login.context().close());
    await login.getByTestId("nick").waitFor();
    assert.equal(await horizontalOverflow(login), 0, `sign-in screen at ${width} px overflows`);
    // The chat, with a long unbroken message and a long room name.
    const page = await ctx.chatPage({ nick: `w${width}`, room, viewport });
    await sendFrom(page, `${"x".repeat(300)} and https://example.com/${"a".repeat(200)}`);
    await page.getByTestId("message").first().waitFor();
    await page.getByTestId("room-input").fill("a-rather-long-room-name-that-goes-on-and-on");
    const overflow = await horizontalOverflow(page);
    if (process.env.BROWSER_TEST_SCREENSHOTS) {
      await page.screenshot({ path: `${process.env.BROWSER_TEST_SCREENSHOTS}/width-${width}.png` });
    }
    assert.equal(overflow, 0, `the chat at ${width} px overflows by ${overflow} px`);
  }
});
