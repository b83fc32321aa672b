// End-to-end: the npm package alone (wasm-client/pkg, no chat page) recovers by itself
// when the gateway is SIGKILLed and restarted on the same ports and data dir.
//
// The page client reaches the gateway's HTTP port (WebSocket, /cert-hash) through a TCP
// gate in this process, so the test decides when its reconnect can succeed: after the
// restart, another client publishes while the gate is still shut, then the gate opens.
// Over WebTransport the new certificate hash is fetched through the gate too (the
// restarted gateway has a new self-signed certificate), and QUIC goes to the gateway.
//
// Run: scripts/browser-test.sh package-reconnect.test.mjs (or `node --test
// package-reconnect.test.mjs` here after `cargo build -p garou-cli`).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { GAROU, ROOT, Diagnostics, eventually, launchBrowser, openPage, serveStatic } from "./lib.mjs";

const WAIT = 15_000;
const ANSI = /\x1b\[[0-9;]*m/g;
const diag = new Diagnostics();
let browser;
let site;
const cleanups = [];

before(async () => {
  browser = await launchBrowser();
  // A bare page next to the package: /pkg/ is wasm-client/pkg.
  const dir = mkdtempSync(path.join(os.tmpdir(), "garou-pkg-site-"));
  writeFileSync(path.join(dir, "index.html"), "<!doctype html><title>garou package test</title>\n");
  symlinkSync(path.join(ROOT, "wasm-client/pkg"), path.join(dir, "pkg"));
  site = await serveStatic(dir);
  cleanups.push(async () => {
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

after(async () => {
  if (process.env.BROWSER_TEST_VERBOSE) diag.dump("everything (BROWSER_TEST_VERBOSE)");
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await browser?.close().catch(() => {});
});

/** `garou serve` with a data dir, on given (or ephemeral) loopback ports. */
async function serve(label, { quic = "127.0.0.1:0", http = "127.0.0.1:0", data }) {
  const child = spawn(GAROU, ["serve", "--quic", quic, "--http", http, "--data", data], {
    cwd: ROOT,
    // The page is served from another origin: it reads /cert-hash cross-origin.
    env: { ...process.env, NO_COLOR: "1", RUST_LOG: process.env.RUST_LOG || "info", GAROU_HTTP_SERVER__CORS_ORIGINS: '["*"]' },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const found = {};
  await new Promise((resolve, reject) => {
    let buf = "";
    child.stderr.on("data", (chunk) => {
      buf += chunk.toString();
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).replace(ANSI, "");
        buf = buf.slice(nl + 1);
        diag.add(label, line);
        found.quic ??= /quic_addr=(\S+)/.exec(line)?.[1];
        found.http ??= /http_addr=(\S+)/.exec(line)?.[1];
        found.sha256 ??= /sha256=([0-9a-f]{64})/.exec(line)?.[1];
        if (found.quic && found.http && found.sha256) resolve();
      }
    });
    child.stdout.on("data", (c) => diag.add(`${label} stdout`, c.toString().trimEnd()));
    child.on("exit", (code, sig) => reject(new Error(`${label} exited early (${code ?? sig})`)));
    setTimeout(() => reject(new Error(`${label} did not log its addresses within 15 s`)), 15_000);
  }).catch((e) => {
    child.kill("SIGKILL");
    throw e;
  });
  const exited = new Promise((r) => child.on("exit", r));
  return {
    quic: found.quic,
    http: found.http,
    sha256: found.sha256,
    /** SIGSTOP / SIGCONT: freeze the process (sockets stay open, nothing answers). */
    signal(sig) {
      child.kill(sig);
    },
    /** SIGKILL: no close frames, no goodbye; resolves once the process is gone. */
    async kill() {
      if (child.exitCode === null && !child.signalCode) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** A TCP forwarder to `target` ("host:port") that refuses connections while shut. */
async function gate(target) {
  const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
  const sockets = new Set();
  const g = { open: true, refused: 0 };
  const server = net.createServer((client) => {
    if (!g.open) {
      g.refused++;
      client.destroy();
      return;
    }
    const upstream = net.connect(port, host);
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  g.url = `http://127.0.0.1:${server.address().port}`;
  g.close = () => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(r));
  };
  return g;
}

function e2e(name, body, timeout = 90_000) {
  test(name, { timeout }, async (t) => {
    const mark = diag.lines.length;
    try {
      await body(t);
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

async function packagePage(label) {
  const page = await openPage(browser, `${site.url}/`, label, diag);
  cleanups.push(() => page.context().close());
  await page.evaluate(async () => {
    const m = await import("/pkg/garou_wasm_client.js");
    await m.default();
    window.garou = m;
  });
  return page;
}

for (const transport of ["auto", "websocket"]) {
  e2e(`the package reconnects by itself after a gateway SIGKILL and restart (${transport})`, async () => {
    const data = mkdtempSync(path.join(os.tmpdir(), "garou-pkg-data-"));
    cleanups.push(async () => rmSync(data, { recursive: true, force: true }));
    let gw = await serve("gateway#1", { data });
    const g = await gate(gw.http);
    cleanups.push(() => g.close());
    let gw2;
    cleanups.push(async () => {
      await gw.kill();
      await gw2?.kill();
    });
    const room = `recover-${transport}`;
    const page = await packagePage(`page ${transport}`);

    // Client A, through the gate, reconnecting by itself.
    const joined = await page.evaluate(
      async ({ url, room, transport }) => {
        const a = await window.garou.GarouClient.connect({ url, nick: "ann", transport, backoffInitialMs: 200, backoffMaxMs: 1000 });
        window.a = a;
        window.seen = [];
        window.texts = [];
        for (const type of ["connecting", "connected", "disconnected", "reconnecting", "rejoined", "closed"]) {
          a.on(type, (ev) => window.seen.push(ev));
        }
        a.on("message", (ev) => ev.room === room && window.texts.push(ev.text));
        const info = await a.join(room);
        await a.send(room, "before");
        return { info, state: a.state, transport: a.transport };
      },
      { url: g.url, room, transport },
    );
    diag.add("test", `A joined: ${JSON.stringify(joined)}`);
    assert.equal(joined.state, "connected");
    assert.equal(joined.transport, transport === "auto" ? "webtransport" : "websocket");
    await eventually(async () => assert.deepEqual(await page.evaluate(() => window.texts), ["before"]), WAIT, "A to see its first message");

    // SIGKILL; nothing may reconnect until the gate opens again.
    g.open = false;
    await gw.kill();
    // A message sent at once may go into the dead connection (WebTransport takes up to
    // deadAfterMs to notice); it is re-sent with its client id after the reconnect.
    const atKill = page.evaluate(({ room }) => window.a.send(room, "sent at kill").then((s) => s.room), { room });
    await eventually(
      async () => assert.notEqual(await page.evaluate(() => window.a.state), "connected"),
      WAIT,
      "A to notice the dead gateway",
    );
    const whileDown = page.evaluate(({ room }) => window.a.send(room, "sent while down").then((s) => s.room), { room });
    await eventually(async () => assert.ok((await page.evaluate(() => window.a.queued)) >= 1), WAIT, "A to queue its message");

    // Restart on the same ports and data dir; B publishes while A still cannot get in.
    gw2 = await serve("gateway#2", { quic: gw.quic, http: gw.http, data });
    assert.notEqual(gw2.sha256, gw.sha256, "the restarted gateway has a new certificate");
    const outage = ["during 1", "during 2", "during 3", "during 4", "during 5"];
    await page.evaluate(
      async ({ url, room, outage, transport }) => {
        const b = await window.garou.GarouClient.connect({ url, nick: "bob", transport, reconnect: false });
        await b.join(room);
        for (const text of outage) await b.send(room, text);
        b.close();
      },
      { url: `http://${gw2.http}`, room, outage, transport },
    );
    assert.notEqual(await page.evaluate(() => window.a.state), "connected", "A reconnected before the gate opened");
    await eventually(async () => assert.ok(g.refused > 0), WAIT, "A to try to reconnect while the gate is shut");
    assert.notEqual(await page.evaluate(() => window.a.state), "connected", "A reconnected through a shut gate");

    g.open = true;
    await eventually(async () => assert.equal(await page.evaluate(() => window.a.state), "connected"), WAIT, "A to reconnect");
    assert.equal(await atKill, room);
    assert.equal(await whileDown, room);
    const expected = ["before", ...outage, "sent at kill", "sent while down"];
    const got = await eventually(
      async () => {
        const texts = await page.evaluate(() => window.texts);
        assert.equal(texts.length, expected.length, JSON.stringify(texts));
        return texts;
      },
      WAIT,
      "A to receive every message",
    );
    // Exactly once each, B's in order, and all before A's queued ones (resume replays first).
    assert.deepEqual(got, expected);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await page.evaluate(() => window.texts), expected, "a duplicate arrived late");

    const seen = await page.evaluate(() => window.seen);
    diag.add("test", `A's events: ${JSON.stringify(seen)}`);
    const types = seen.map((e) => e.type);
    const lost = types.indexOf("disconnected");
    assert.ok(lost >= 0, `no disconnected event: ${types}`);
    assert.equal(seen[lost].willReconnect, true);
    // The first connection's events came before any listener: kept for the listeners.
    assert.ok(types.indexOf("connected") >= 0 && types.indexOf("connected") < lost, `first connected: ${types}`);
    const back = types.lastIndexOf("connected");
    assert.ok(back > lost, `no connected after disconnected: ${types}`);
    assert.equal(seen[back].reconnected, true);
    assert.ok(types.slice(lost, back).includes("reconnecting"), `no reconnecting between: ${types}`);
    const retry = seen.find((e) => e.type === "reconnecting");
    assert.equal(typeof retry.delayMs, "number");
    assert.equal(typeof retry.lastError.code, "string");
    const rejoined = seen.find((e) => e.type === "rejoined");
    assert.deepEqual([rejoined.room, rejoined.resumed], [room, true]);
    assert.ok(!types.includes("closed"), `closed: ${types}`);

    // close() is final: queued commands fail with a typed error.
    const after = await page.evaluate(async ({ room }) => {
      window.a.close();
      try {
        await window.a.send(room, "after close");
        return "sent";
      } catch (e) {
        return { isGarouError: e instanceof window.garou.GarouError, isError: e instanceof Error, code: e.code, state: window.a.state };
      }
    }, { room });
    assert.deepEqual(after, { isGarouError: true, isError: true, code: "Closed", state: "closed" });
    await gw2.kill();
  });
}

e2e("commands queued while disconnected are bounded by maxQueue and fail with typed errors on close", async () => {
  const data = mkdtempSync(path.join(os.tmpdir(), "garou-pkg-data-"));
  cleanups.push(async () => rmSync(data, { recursive: true, force: true }));
  const gw = await serve("gateway#q", { data });
  cleanups.push(() => gw.kill());
  const page = await packagePage("page queue");
  const room = "queue";
  await page.evaluate(
    async ({ url, room }) => {
      const c = await window.garou.GarouClient.connect({ url, nick: "quinn", transport: "websocket", maxQueue: 3, backoffInitialMs: 60000, backoffMaxMs: 60000 });
      window.c = c;
      await c.join(room);
    },
    { url: `http://${gw.http}`, room },
  );
  await gw.kill();
  await eventually(async () => assert.equal(await page.evaluate(() => window.c.state), "reconnecting"), WAIT, "the client to notice");
  const result = await page.evaluate(async ({ room }) => {
    const c = window.c;
    const settle = (p) => p.then(() => "ok", (e) => e.code);
    const queued = [1, 2, 3].map((i) => settle(c.send(room, `q${i}`)));
    const full = await settle(c.send(room, "q4"));
    const count = c.queued;
    c.close();
    return { full, count, queued: await Promise.all(queued), state: c.state };
  }, { room });
  assert.deepEqual(result, { full: "QueueFull", count: 3, queued: ["Closed", "Closed", "Closed"], state: "closed" });
});

for (const transport of ["auto", "websocket"]) {
  e2e(`a frozen gateway (SIGSTOP) is detected by the keep-alive pings, then rejoined (${transport})`, async () => {
    const data = mkdtempSync(path.join(os.tmpdir(), "garou-pkg-data-"));
    cleanups.push(async () => rmSync(data, { recursive: true, force: true }));
    const gw = await serve(`gateway#frozen-${transport}`, { data });
    cleanups.push(() => gw.kill());
    const page = await packagePage(`page frozen ${transport}`);
    const room = `frozen-${transport}`;
    await page.evaluate(
      async ({ url, room, transport }) => {
        const c = await window.garou.GarouClient.connect({ url, nick: "fay", transport, backoffInitialMs: 200, backoffMaxMs: 1000 });
        window.c = c;
        window.events = [];
        window.got = [];
        c.on((ev) => window.events.push(ev));
        c.on("message", (ev) => window.got.push(ev.text));
        await c.join(room);
      },
      { url: `http://${gw.http}`, room, transport },
    );
    // Frozen: the sockets stay open and nothing closes them; only the silence tells.
    gw.signal("SIGSTOP");
    const lost = await eventually(
      async () => {
        const ev = (await page.evaluate(() => window.events)).find((e) => e.type === "disconnected");
        assert.ok(ev, "no disconnected event yet");
        return ev;
      },
      WAIT,
      "the keep-alive to declare the frozen gateway dead",
    );
    assert.equal(lost.reason.code, "Timeout", JSON.stringify(lost));
    assert.match(lost.reason.message, /no data from the server/);
    assert.equal(lost.willReconnect, true);
    gw.signal("SIGCONT");
    await eventually(async () => assert.equal(await page.evaluate(() => window.c.state), "connected"), 30_000, "the client to reconnect");
    const sent = await page.evaluate(({ room }) => window.c.send(room, "after the thaw").then((s) => s.room), { room });
    assert.equal(sent, room);
    await eventually(async () => assert.deepEqual(await page.evaluate(() => window.got), ["after the thaw"]), WAIT, "the message after the thaw");
    await page.evaluate(() => window.c.close());
  });
}

e2e("a pinned certificate hash makes a restarted gateway's new certificate a terminal CertificateMismatch", async () => {
  const data = mkdtempSync(path.join(os.tmpdir(), "garou-pkg-data-"));
  cleanups.push(async () => rmSync(data, { recursive: true, force: true }));
  const gw = await serve("gateway#pin", { data });
  let gw2;
  cleanups.push(async () => {
    await gw.kill();
    await gw2?.kill();
  });
  const page = await packagePage("page pin");
  const first = await page.evaluate(
    async ({ url, pin }) => {
      const c = await window.garou.GarouClient.connect({ url, nick: "pia", certHash: pin, backoffInitialMs: 200, backoffMaxMs: 400 });
      window.c = c;
      window.events = [];
      c.on((ev) => window.events.push(ev));
      await c.join("pinned");
      return c.transport;
    },
    { url: `http://${gw.http}`, pin: gw.sha256 },
  );
  assert.equal(first, "webtransport");
  await gw.kill();
  gw2 = await serve("gateway#pin2", { quic: gw.quic, http: gw.http, data });
  assert.notEqual(gw2.sha256, gw.sha256);
  const closed = await eventually(
    async () => {
      const ev = (await page.evaluate(() => window.events)).find((e) => e.type === "closed");
      assert.ok(ev, "no closed event yet");
      return ev;
    },
    WAIT,
    "the client to give up on the new certificate",
  );
  diag.add("test", `closed: ${JSON.stringify(closed)}`);
  assert.match(closed.reason, /pinned/);
  const events = await page.evaluate(() => window.events);
  const last = events.filter((e) => e.type === "reconnecting").pop();
  assert.ok(last, "no reconnecting event");
  assert.equal(await page.evaluate(() => window.c.state), "closed");
  // Never over WebSocket behind the pin's back.
  assert.ok(!events.some((e) => e.type === "connected" && e.reconnected), JSON.stringify(events));
  const err = await page.evaluate(() => window.c.join("x").catch((e) => [e.name, e.code]));
  assert.deepEqual(err, ["GarouError", "Disconnected"]);
  // A fresh connect with the stale pin fails with the typed code.
  const refused = await page.evaluate(
    async ({ url, pin }) => window.garou.GarouClient.connect({ url, certHash: pin }).then(() => "connected", (e) => [e instanceof window.garou.GarouError, e.code]),
    { url: `http://${gw2.http}`, pin: gw.sha256 },
  );
  assert.deepEqual(refused, [true, "CertificateMismatch"]);
});
