// The connection: loads the wasm client, connects, and when the connection is lost
// connects again by itself (growing pauses, jittered, capped) until it works or the page
// closes it. Each attempt goes through `GarouClient.connect`, which fetches the gateway's
// current certificate hash (`/cert-hash`) first, so a gateway restarted with a new
// self-signed certificate is trusted again without a reload.
//
// The rest of the page sees `state.client` (null while down), `state.status`, and three
// callbacks: `event(ev)` for every session event, `up(client, again)` once connected
// (again = after a loss), `down(reason)` when the connection is lost.

import { state } from "./state.js";

const params = new URLSearchParams(location.search);
/** The gateway's HTTP origin: the page's own unless ?gateway= points elsewhere. */
export const GATEWAY = params.get("gateway") || location.origin;

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;

let wasm = null;
let options = null; // { nick, token, transport } of the first successful connect
let handlers = { event() {}, up() {}, down() {}, status() {} };
let attempt = 0;
let timer = null;
let closing = false;
let connecting = false;

/** Load (once) and return the wasm client class. */
export async function loadClient() {
  if (!wasm) {
    try {
      const mod = await import("../pkg/garou_wasm_client.js");
      await mod.default();
      wasm = mod;
    } catch (e) {
      console.error("loading the wasm client failed", e);
      throw new Error(`Internal: the browser client could not be loaded (${e.message || e})`);
    }
  }
  return wasm.GarouClient;
}

/** Set the callbacks (see the module comment). */
export function onConnection(h) {
  handlers = { ...handlers, ...h };
}

function setStatus(status, detail = "") {
  state.status = status;
  state.statusDetail = detail;
  handlers.status(status, detail);
}

/** The first connection: rejects with the reason (shown on the sign-in form). */
export async function connect(opts) {
  const GarouClient = await loadClient();
  setStatus("connecting");
  try {
    const client = await GarouClient.connect({ url: GATEWAY, ...opts });
    options = opts;
    adopt(client, false);
    return client;
  } catch (e) {
    setStatus("idle");
    throw e;
  }
}

function adopt(client, again) {
  state.client = client;
  state.nick = client.nick;
  state.userId = client.userId;
  state.transport = client.transport;
  state.fallbackReason = "";
  attempt = 0;
  client.on((ev) => {
    if (client !== state.client) return; // an old session's last events
    if (ev.type === "closed") {
      lost(client, ev.reason);
      return;
    }
    if (ev.type === "transport") {
      state.transport = ev.transport;
      state.fallbackReason = ev.fallback_reason || "";
    }
    try {
      handlers.event(ev);
    } catch (e) {
      console.error("event handler failed", ev, e);
    }
  });
  setStatus("up");
  handlers.up(client, again);
}

function lost(client, reason) {
  state.client = null;
  if (closing || reason === "closed by the client") {
    setStatus("down", reason);
    handlers.down(reason);
    return;
  }
  console.info("garou: connection lost:", reason);
  setStatus("reconnecting", reason);
  handlers.down(reason);
  schedule();
}

function schedule() {
  clearTimeout(timer);
  const base = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** attempt);
  attempt++;
  timer = setTimeout(retry, base / 2 + Math.random() * (base / 2));
}

async function retry() {
  timer = null;
  if (closing || state.client || connecting || !options) return;
  connecting = true;
  try {
    const GarouClient = await loadClient();
    // The nick we had (it may have been changed since the first connect).
    const client = await GarouClient.connect({ url: GATEWAY, ...options, nick: state.nick || options.nick });
    connecting = false;
    if (closing) {
      client.close();
      return;
    }
    adopt(client, true);
  } catch (e) {
    connecting = false;
    // Everything is retried: a gateway that is down or restarting, and also a nick the
    // server still holds for our previous, not yet timed out, session.
    console.info("garou: reconnect attempt failed:", e && e.message ? e.message : e);
    setStatus("reconnecting", String((e && e.message) || e).slice(0, 160));
    schedule();
  }
}

/** Try again now (the banner's button, the browser coming back online). */
export function retryNow() {
  if (state.client || closing || !options) return;
  attempt = 0;
  clearTimeout(timer);
  retry();
}

/** Close for good (the page goes away). */
export function close() {
  closing = true;
  clearTimeout(timer);
  state.client?.close();
}

window.addEventListener("online", retryNow);
