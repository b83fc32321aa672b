// Chat pages on different nodes of one cluster (PostgreSQL + NATS): one over WebTransport on
// the hub node, one forced onto WebSocket on a relay node, chatting in one room while the
// hub and then the relay are killed: each page moves to a live node by itself (?gateways=)
// and the conversation stays whole, in order, once each. Skipped (with the reason) unless
// GAROU_TEST_PG and GAROU_TEST_NATS are set (scripts/test.sh sets both).

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { GAROU, ROOT, Diagnostics, eventually, launchBrowser, openPage, openedPages, pageErrors, shownMessages } from "./lib.mjs";

const WAIT = 15_000;
const PG = process.env.GAROU_TEST_PG;
const NATS = process.env.GAROU_TEST_NATS;
const skip = !PG || !NATS ? "GAROU_TEST_PG and GAROU_TEST_NATS unset" : false;
const diag = new Diagnostics();
const dir = mkdtempSync(path.join(os.tmpdir(), "garou-cluster-test-"));
const cleanups = [];

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

/** A TCP port free now (the node binds UDP on the same number; retried if taken). */
function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A database of its own on the test server; dropped after. */
function createDb() {
  const name = `garou_test_${process.pid}_browser`;
  const psql = (sql) => execFileSync("psql", [PG, "-v", "ON_ERROR_STOP=1", "-qc", sql], { stdio: "pipe" });
  psql(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  psql(`CREATE DATABASE "${name}"`);
  cleanups.push(async () => psql(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
  const url = new URL(PG);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Every node lets pages of the others fetch its certificate hash (CORS). */
const config = path.join(dir, "garou.toml");
writeFileSync(config, `[http_server]\ncors_origins = ["*"]\n`);

/** `garou serve` as cluster node `name`; resolves once `/ready` answers 200. */
async function startNode(name, store, certs) {
  const [quic, http] = [await freePort(), await freePort()];
  const child = spawn(
    GAROU,
    ["serve", "--node", name, "--nats", NATS, "--store", store, "--quic", `127.0.0.1:${quic}`, "--http", `127.0.0.1:${http}`,
     "--data", path.join(dir, name), "--config", config, "--cert", path.join(certs, "cert.pem"), "--key", path.join(certs, "key.pem")],
    { cwd: ROOT, env: { ...process.env, NO_COLOR: "1", RUST_LOG: "info", GAROU_CLUSTER__NAME: `browser${process.pid}` }, stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stderr.on("data", (c) => diag.add(`node ${name}`, c.toString().trimEnd()));
  cleanups.push(async () => child.kill("SIGKILL"));
  const url = `http://127.0.0.1:${http}`;
  await eventually(async () => {
    const r = await fetch(`${url}/ready`);
    assert.equal(r.status, 200);
  }, WAIT, `node ${name} ready`);
  const health = await (await fetch(`${url}/health`)).json();
  return { url, role: health.cluster.role, kill: () => child.kill("SIGKILL") };
}

test("pages on WebTransport and WebSocket, on different nodes, chat through a killed hub and a killed relay", { skip, timeout: 120_000 }, async () => {
  const mark = openedPages.length;
  try {
    const certs = path.join(dir, "certs");
    execFileSync(GAROU, ["cert", "--out", certs], { stdio: "pipe" });
    const store = createDb();
    const a = await startNode("a", store, certs);
    assert.equal(a.role, "hub");
    const b = await startNode("b", store, certs);
    const c = await startNode("c", store, certs);
    const role = async (n) => (await (await fetch(`${n.url}/health`)).json()).cluster.role;
    await eventually(async () => assert.deepEqual([await role(b), await role(c)], ["relay", "relay"]), WAIT, "b and c to relay");
    const browser = await launchBrowser();
    cleanups.push(() => browser.close());
    const page = async (node, nick, transport, fallback) => {
      const q = new URLSearchParams({ nick, room: "both", gateways: fallback.url });
      if (transport) q.set("transport", transport);
      const p = await openPage(browser, `${node.url}/?${q}`, `page ${nick}`, diag);
      await eventually(async () => assert.equal(await p.getByTestId("room").textContent(), "both"), WAIT, `${nick} joined`);
      return p;
    };
    // ann: WebTransport on the hub node; ben: WebSocket on a relay node; both may fall back on c.
    const ann = await page(a, "ann", undefined, c);
    const ben = await page(b, "ben", "websocket", c);
    const connState = (p) => p.getByTestId("conn").getAttribute("data-state");
    const log = [];
    /** `p` says `text` once connected, and both pages show the whole conversation. */
    const say = async (p, text) => {
      await eventually(async () => assert.equal(await connState(p), "up"), 3 * WAIT, `a connection before "${text}"`);
      await p.getByTestId("message-input").fill(text);
      await p.getByTestId("send").click();
      log.push(text);
      for (const q of [ann, ben]) {
        await eventually(async () => assert.deepEqual((await shownMessages(q)).map((m) => m.text), log), 3 * WAIT, `"${text}" on both pages`);
      }
    };
    await say(ann, "hello from the hub node over WebTransport");
    await say(ben, "hello from a relay node over WebSocket");

    // kill -9 of the hub: another node takes over; both pages recover by themselves.
    a.kill();
    await eventually(async () => assert.notEqual(await connState(ann), "up"), 3 * WAIT, "ann's page to see the loss");
    await say(ann, "ann after the hub died");
    await say(ben, "ben after the hub died");

    // kill -9 of ben's relay node: his page moves to c, the address it was also given.
    b.kill();
    await eventually(async () => assert.notEqual(await connState(ben), "up"), 3 * WAIT, "ben's page to see the loss");
    await say(ben, "ben after his relay died");
    // (The browser logs the refused attempts on dead nodes: expected.)
    const errors = pageErrors(mark, [/ERR_CONNECTION_REFUSED/, /WebTransport/]);
    assert.deepEqual(errors, [], `errors in the pages' consoles:\n${errors.join("\n")}`);
  } catch (e) {
    diag.dump("cluster browser test");
    throw e;
  }
});
