// A page that goes away abruptly (its network cut, then reloaded) comes back with the same
// nick at once: the wasm client kept the resume token of its session's Welcome in
// sessionStorage, the reloaded page offers it, and the gateway hands the stale session
// (which would otherwise hold the nick until the idle timeout) over to it, closing the old
// one with SessionReplaced. A fresh page without the token is refused the nick meanwhile.
// Once over WebTransport and once forced onto WebSocket.
//
// The page reaches the gateway through a proxy (HTTP, WebSocket and a UDP relay for
// WebTransport) whose `cut` silences every connection open so far, both ways and without
// closing anything towards the gateway: what a vanished network or a killed browser leaves.
//
// Run: scripts/browser-test.sh page-resume.test.mjs

import assert from "node:assert/strict";
import dgram from "node:dgram";
import http from "node:http";
import net from "node:net";
import { eventually, openPage } from "./lib.mjs";
import { WAIT, expectLog, fixture, sendFrom } from "./pagekit.mjs";

// The cut connections' own errors, and the refused fresh page's.
const ctx = fixture({
  allowErrors: [/WebTransport|WebSocket|QUIC_|net::ERR_|Failed to load resource|NickUnavailable|not available/],
});

/**
 * A proxy in front of the gateway `gw`: plain HTTP is forwarded (`/cert-hash` rewritten so
 * WebTransport goes through the UDP relay), WebSocket upgrades are piped, and UDP is relayed
 * with one upstream socket per browser address. `cut()` drops every byte and datagram of the
 * WebSocket connections and UDP flows open so far, and keeps their gateway side open.
 */
async function cutProxy(gw) {
  const [gwHost, gwPort] = [gw.httpAddr.replace(/:\d+$/, ""), Number(gw.httpAddr.split(":").pop())];
  const [quicHost, quicPort] = [gw.quicAddr.replace(/:\d+$/, ""), Number(gw.quicAddr.split(":").pop())];
  const live = new Set(); // { cut: boolean } of every WebSocket connection and UDP flow

  // UDP: browser address -> upstream socket.
  const front = dgram.createSocket("udp4");
  await new Promise((r) => front.bind(0, "127.0.0.1", r));
  const udpPort = front.address().port;
  const flows = new Map();
  front.on("message", (msg, from) => {
    const key = `${from.address}:${from.port}`;
    let flow = flows.get(key);
    if (!flow) {
      const up = dgram.createSocket("udp4");
      flow = { up, cut: false };
      up.on("message", (m) => flow.cut || front.send(m, from.port, from.address));
      up.on("error", () => {});
      up.connect(quicPort, quicHost);
      flow.ready = new Promise((r) => up.once("connect", r));
      flows.set(key, flow);
      live.add(flow);
    }
    if (!flow.cut) flow.ready.then(() => flow.cut || flow.up.send(msg));
  });

  const server = http.createServer((req, res) => {
    const up = http.request({ host: gwHost, port: gwPort, method: req.method, path: req.url, headers: req.headers, agent: false }, (upRes) => {
      if (req.url.split("?")[0] !== "/cert-hash" || upRes.statusCode !== 200) {
        res.writeHead(upRes.statusCode, upRes.headers);
        upRes.pipe(res);
        return;
      }
      let body = "";
      upRes.on("data", (c) => (body += c));
      upRes.on("end", () => {
        const json = JSON.parse(body);
        json.url = `https://127.0.0.1:${udpPort}/`;
        const out = JSON.stringify(json);
        const headers = { ...upRes.headers, "content-length": Buffer.byteLength(out) };
        delete headers["transfer-encoding"];
        res.writeHead(200, headers);
        res.end(out);
      });
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  const sockets = new Set(); // both ends of every piped WebSocket, destroyed by close()
  server.on("upgrade", (req, sock, head) => {
    const conn = { cut: false };
    live.add(conn);
    const up = net.connect(gwPort, gwHost, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(`${lines.join("\r\n")}\r\n\r\n`);
      if (head.length) up.write(head);
    });
    sock.on("data", (d) => conn.cut || up.write(d));
    up.on("data", (d) => conn.cut || sock.write(d));
    // A cut connection's browser side may close; its gateway side stays open, silent.
    sock.on("close", () => conn.cut || up.end());
    up.on("close", () => conn.cut || sock.destroy());
    sock.on("error", () => {});
    up.on("error", () => {});
    for (const s of [sock, up]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      for (const c of live) c.cut = true;
    },
    async close() {
      // Upgraded sockets are not the server's HTTP connections any more: closeAllConnections
      // leaves them, and server.close would wait for them (the cut ones) for ever.
      for (const s of sockets) s.destroy();
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
      for (const f of flows.values()) f.up.close();
      front.close();
    },
  };
}

for (const transport of ["webtransport", "websocket"]) {
  ctx.e2e(`a page cut off and reloaded on ${transport} takes its session and nick back at once`, async () => {
    const room = `resume-${transport}`;
    const nick = transport === "webtransport" ? "rita" : "rudy";
    const proxy = await cutProxy(ctx.gw);
    ctx.cleanups.push(proxy.close);
    const obs = ctx.native(transport === "webtransport" ? "owt" : "ows", room);
    const q = new URLSearchParams({ nick, room, transport });
    if (ctx.site) q.set("gateway", proxy.url);
    const url = `${ctx.site ? ctx.site.url : proxy.url}/?${q}`;
    const page = await openPage(ctx.browser, url, `page ${nick}`, ctx.diag);
    ctx.cleanups.push(() => page.context().close());
    const joined = () => eventually(async () => assert.equal(await page.getByTestId("room").textContent(), room), WAIT, `${nick}'s page to join ${room}`);
    await joined();
    assert.equal((await page.getByTestId("transport").textContent()).trim(), transport);
    await sendFrom(page, "before the cut");
    await obs.waitForLine(`[#${room}] <${nick}> before the cut`);

    // The network goes: nothing more reaches the gateway from this page, no close.
    proxy.cut();
    const mark = ctx.diag.lines.length;
    // Meanwhile the stale session holds the nick: a fresh page (no token) is refused it.
    const fresh = await openPage(ctx.browser, ctx.url(new URLSearchParams({ nick, room, transport })), `fresh ${nick}`, ctx.diag);
    ctx.cleanups.push(() => fresh.context().close());
    await eventually(
      async () => assert.match(await fresh.getByTestId("login-error").textContent(), /not available/),
      WAIT,
      "the fresh page to be refused the nick",
    );
    await fresh.context().close();

    // Reloaded, the page (which left its token in sessionStorage when it went) offers it
    // and is back at once, same nick, same room.
    const t0 = Date.now();
    await page.reload();
    await joined();
    await eventually(async () => assert.equal(await page.getByTestId("conn").getAttribute("data-state"), "up"), WAIT, "the page to be up");
    const back = Date.now() - t0;
    ctx.diag.add("test", `${transport}: back as ${nick} ${back} ms after the reload`);
    console.log(`${transport}: reloaded page back as ${nick} in ${back} ms`);
    assert.equal(await page.getByTestId("login-error").isVisible(), false);
    // The gateway took the stale session over (and closed it with SessionReplaced).
    const log = ctx.diag.lines.slice(mark).filter((l) => l.includes("gateway:"));
    assert.ok(log.some((l) => l.includes("session taken over with its resume token")), "the gateway logs the takeover");
    assert.ok(log.some((l) => l.includes("SessionReplaced")), "the stale session is closed with SessionReplaced");

    // Chat goes on: history shown once, and a new message reaches the observer from the same nick.
    await sendFrom(page, "after the reload");
    await expectLog(page, ["before the cut", "after the reload"], "the log after the reload");
    await obs.waitForLine(`[#${room}] <${nick}> after the reload`);
    await eventually(
      async () => {
        const me = page.locator(`[data-testid="member"][data-nick="${nick}"]`);
        assert.equal(await me.count(), 1);
        assert.equal(await me.getAttribute("data-online"), "true");
      },
      WAIT,
      `${nick} listed once, online`,
    );
    assert.equal(await obs.quit(), 0);
  }, 60_000);
}
