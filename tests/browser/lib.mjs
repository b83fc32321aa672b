// Helpers of the browser tests: the gateway and native clients as child processes, headless
// Chromium through playwright-core, bounded polling, and diagnostics for failures.

import { spawn } from "node:child_process";
import { existsSync, createReadStream, statSync, realpathSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const GAROU = process.env.GAROU_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, "target"), "debug/garou");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

const ANSI = /\x1b\[[0-9;]*m/g;

/** Poll `fn` until it returns without throwing (returns its value) or `timeout` ms pass. */
export async function eventually(fn, timeout = 10_000, what = "condition") {
  const deadline = Date.now() + timeout;
  let last;
  for (let delay = 25; ; delay = Math.min(delay * 2, 250)) {
    try {
      return await fn();
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const err = new Error(`timed out after ${timeout} ms waiting for ${what}: ${last && last.message}`);
      err.cause = last;
      throw err;
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** Resolve when `emitter` emits `event` (or reject after `timeout` ms). */
function once(emitter, event, timeout, what) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${timeout} ms: ${what}`)), timeout);
    emitter.once(event, (...a) => {
      clearTimeout(t);
      resolve(a);
    });
  });
}

/** Everything the tests print when something fails. */
export class Diagnostics {
  constructor() {
    this.lines = [];
  }
  add(source, text) {
    this.lines.push(`[${new Date().toISOString().slice(11, 23)}] ${source}: ${text}`);
  }
  dump(title) {
    const out = [`----- ${title}: ${this.lines.length} log lines -----`, ...this.lines.slice(-400), "-----"];
    console.error(out.join("\n"));
  }
}

/**
 * `garou serve` on loopback ports: ephemeral ones unless `quic`/`http` name them (a restart
 * on the same ports), with the store in `data` (default: the gateway's own default) and
 * `config` (a TOML file) if given.
 */
export async function startGateway(diag, { quic = "127.0.0.1:0", http = "127.0.0.1:0", data, config } = {}) {
  if (!existsSync(GAROU)) throw new Error(`${GAROU} is missing: run cargo build -p garou-cli`);
  const args = ["serve", "--quic", quic, "--http", http];
  if (data) args.push("--data", data);
  if (config) args.push("--config", config);
  const child = spawn(GAROU, args, {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1", RUST_LOG: process.env.RUST_LOG || "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const found = {};
  const ready = new Promise((resolve, reject) => {
    let buf = "";
    const onData = (chunk) => {
      buf += chunk.toString();
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).replace(ANSI, "");
        buf = buf.slice(nl + 1);
        diag.add("gateway", line);
        found.quic ??= /quic_addr=(\S+)/.exec(line)?.[1];
        found.http ??= /http_addr=(\S+)/.exec(line)?.[1];
        found.sha256 ??= /sha256=([0-9a-f]{64})/.exec(line)?.[1];
        if (found.quic && found.http && found.sha256) resolve();
      }
    };
    child.stderr.on("data", onData);
    child.stdout.on("data", (c) => diag.add("gateway stdout", c.toString().trimEnd()));
    child.on("exit", (code, sig) => reject(new Error(`gateway exited early (${code ?? sig})`)));
    setTimeout(() => reject(new Error("gateway did not log its addresses within 15 s")), 15_000);
  });
  try {
    await ready;
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  return {
    child,
    quicAddr: found.quic,
    httpAddr: found.http,
    http: `http://${found.http}`,
    sha256: found.sha256,
    /** SIGKILL: no goodbye to anyone, as in a crash. */
    async kill() {
      if (child.exitCode !== null || child.signalCode) return;
      const exited = once(child, "exit", 8_000, "gateway kill");
      child.kill("SIGKILL");
      await exited;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode) return;
      const exited = once(child, "exit", 8_000, "gateway shutdown");
      child.kill("SIGTERM");
      await exited.catch(() => child.kill("SIGKILL"));
    },
  };
}

/** `garou chat` over raw QUIC, stdin piped; its stdout lines are kept. */
export class NativeChat {
  // `extra`: more `garou chat` flags (e.g. ["--rate", "0"]).
  constructor(gw, nick, room, diag, extra = []) {
    this.nick = nick;
    this.lines = [];
    this.child = spawn(GAROU, ["chat", "--server", gw.quicAddr, "--cert-hash", gw.sha256, "--nick", nick, "--room", room, ...extra], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let buf = "";
    this.child.stdout.on("data", (chunk) => {
      buf += chunk.toString();
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.lines.push(line);
        diag.add(`native ${nick} stdout`, line);
      }
    });
    this.child.stderr.on("data", (c) => diag.add(`native ${nick} stderr`, c.toString().replace(ANSI, "").trimEnd()));
    this.exit = new Promise((resolve) => this.child.on("exit", (code, sig) => resolve(code ?? sig)));
  }
  say(line) {
    this.child.stdin.write(`${line}\n`);
  }
  async waitForLine(text, timeout = 10_000) {
    return eventually(
      () => {
        const hit = this.lines.find((l) => l === text);
        if (!hit) throw new Error(`${this.nick} printed no line ${JSON.stringify(text)}`);
        return hit;
      },
      timeout,
      `${this.nick} to print ${JSON.stringify(text)}`,
    );
  }
  /** End of input: the client waits for its acks and exits; returns the exit code. */
  async quit(timeout = 12_000) {
    this.child.stdin.end();
    const t = setTimeout(() => this.child.kill("SIGKILL"), timeout);
    const code = await this.exit;
    clearTimeout(t);
    return code;
  }
  kill() {
    if (this.child.exitCode === null && !this.child.signalCode) this.child.kill("SIGKILL");
  }
}

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export function launchBrowser() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium chromium-driver`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/** Every page `openPage` opened, with the errors it reported (see `pageErrors`). */
export const openedPages = [];

/**
 * A fresh context and page whose console output and errors go to `diag` under `label`.
 * Uncaught exceptions and `console.error` lines are also kept on the page: `pageErrors`.
 */
export async function openPage(browser, url, label, diag, { viewport = { width: 1280, height: 800 } } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  openedPages.push({ page, label, errors });
  page.on("console", (msg) => {
    diag.add(`${label} console.${msg.type()}`, msg.text());
    if (msg.type() === "error") errors.push(`console.error: ${msg.text()}`);
  });
  page.on("pageerror", (err) => {
    diag.add(`${label} pageerror`, err.stack || String(err));
    errors.push(`pageerror: ${err.stack || err}`);
  });
  page.on("requestfailed", (req) => diag.add(`${label} requestfailed`, `${req.url()} ${req.failure()?.errorText}`));
  page.on("response", (res) => res.status() >= 400 && diag.add(`${label} http ${res.status()}`, res.url()));
  page.on("crash", () => diag.add(label, "page crashed"));
  diag.add(label, `open ${url}`);
  await page.goto(url);
  return page;
}

/** Serve a folder over HTTP on 127.0.0.1 (symlinks followed, e.g. file: dependencies). */
export async function serveStatic(dir) {
  const types = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".map": "application/json",
  };
  const server = http.createServer((req, res) => {
    try {
      let rel = decodeURIComponent(new URL(req.url, "http://x").pathname);
      if (rel.endsWith("/")) rel += "index.html";
      const file = path.join(dir, path.normalize(rel));
      if (!file.startsWith(dir)) throw new Error("outside");
      const real = realpathSync(file);
      if (!statSync(real).isFile()) throw new Error("not a file");
      res.writeHead(200, { "content-type": types[path.extname(real)] || "application/octet-stream", "cache-control": "no-store" });
      createReadStream(real).pipe(res);
    } catch {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => server.close(r)),
  };
}

/**
 * The errors pages opened since `mark` (an `openedPages.length`) reported, except lines
 * matching `allow` (e.g. the browser's own network errors while a gateway is down).
 */
export function pageErrors(mark = 0, allow = []) {
  const out = [];
  for (const { label, errors } of openedPages.slice(mark)) {
    for (const e of errors) if (!allow.some((re) => re.test(e))) out.push(`${label}: ${e}`);
  }
  return out;
}

/**
 * The messages a chat page shows, in DOM order: `{id, offset, nick, text}`. Fails when a
 * message is shown twice (same id or offset) or out of order (offsets not increasing).
 */
export async function shownMessages(page) {
  const list = await page.evaluate(() =>
    [...document.querySelectorAll('#messages [data-testid="message"]')].map((el) => ({
      id: Number(el.dataset.id),
      offset: Number(el.dataset.offset),
      nick: el.dataset.author,
      text: el.querySelector('[data-testid="message-text"]')?.firstChild?.textContent ?? "",
    })),
  );
  const ids = new Set();
  for (let i = 0; i < list.length; i++) {
    const m = list[i];
    if (ids.has(m.id)) throw new Error(`message ${m.id} (${JSON.stringify(m.text)}) is shown twice`);
    ids.add(m.id);
    if (i > 0 && !(list[i - 1].offset < m.offset)) {
      throw new Error(`messages out of order: offset ${list[i - 1].offset} (${JSON.stringify(list[i - 1].text)}) before ${m.offset} (${JSON.stringify(m.text)})`);
    }
  }
  return list;
}

/** The page's horizontal overflow in CSS pixels (0 when it cannot scroll sideways). */
export function horizontalOverflow(page) {
  return page.evaluate(() => {
    const el = document.scrollingElement;
    return Math.max(el.scrollWidth - el.clientWidth, document.body.scrollWidth - window.innerWidth, 0);
  });
}
