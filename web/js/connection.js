// The connection: loads the wasm client and connects once; the client then recovers by
// itself (garou-wasm-client's reconnect: dead-peer pings, backoff with jitter, the
// certificate hash fetched again before every WebTransport attempt — a gateway restarted
// with a new self-signed certificate is trusted again without a reload —, rooms resumed
// and unacknowledged sends re-sent with their original ids).
//
// The rest of the page sees `state.client` (one object for the page's life),
// `state.status` ("connecting", "up", "reconnecting", "down") and these callbacks:
// `event(ev)` for every session event, `up(client, again)` once connected (again = after a
// loss), `down(reason)` when the connection is lost, `rejoined(ev)` for each room the
// client joined again after a reconnect, `status(status, detail)` on every change.

import { state } from "./state.js";

const params = new URLSearchParams(location.search);
/** The gateway's HTTP origin: the page's own unless ?gateway= points elsewhere. */
export const GATEWAY = params.get("gateway") || location.origin;
/**
 * More gateways to fall back on, e.g. the other nodes of a cluster:
 * ?gateways=http://b:8081,http://c:8082. Every reconnect attempt takes the next address in
 * turn (the wasm client's `urls`), so the page moves to a live node by itself.
 */
const FALLBACKS = (params.get("gateways") || "")
  .split(",")
  .map((s) => s.trim())
  .filter(Boolean);

/** Reconnect pacing for a page someone is looking at: first retry after 0.25-0.5 s, at most 2.5-5 s apart. */
const RECONNECT = { backoffInitialMs: 500, backoffMaxMs: 5000 };

let wasm = null;
let handlers = { event() {}, up() {}, down() {}, rejoined() {}, status() {} };

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

const reasonText = (r) => (r ? (r.code && r.message ? `${r.code}: ${r.message}` : r.message || r.code || String(r)) : "");

/** The first connection: rejects with the reason (shown on the sign-in form). */
export async function connect(opts) {
  const GarouClient = await loadClient();
  setStatus("connecting");
  let client;
  try {
    client = await GarouClient.connect({ url: GATEWAY, urls: [GATEWAY, ...FALLBACKS], ...RECONNECT, ...opts });
  } catch (e) {
    setStatus("idle");
    throw e;
  }
  state.client = client;
  // Closed when the page goes away — after the client's own pagehide listener (added
  // during connect, so it runs first) left the resume token in sessionStorage: a closed
  // client leaves none, and a reloaded page would be refused its own nick while the old
  // session lingers (a close that never reaches the gateway, e.g. the network is gone).
  window.addEventListener("pagehide", close);
  identify(client, client.transport);
  client.on((ev) => {
    try {
      if (!connectionEvent(client, ev)) handlers.event(ev);
    } catch (e) {
      console.error("event handler failed", ev, e);
    }
  });
  setStatus("up");
  handlers.up(client, false);
  return client;
}

function identify(client, transport) {
  state.nick = client.nick;
  state.userId = client.userId;
  state.transport = transport;
}

/** Handle the connection's own events; false for the session's (rooms, messages, ...). */
function connectionEvent(client, ev) {
  switch (ev.type) {
    case "disconnected":
      console.info("garou: connection lost:", reasonText(ev.reason));
      setStatus(ev.willReconnect ? "reconnecting" : "down", reasonText(ev.reason));
      handlers.down(reasonText(ev.reason));
      return true;
    case "reconnecting":
      setStatus("reconnecting", reasonText(ev.lastError));
      return true;
    case "connecting":
      return true;
    case "connected":
      if (ev.reconnected) {
        identify(client, ev.transport);
        setStatus("up");
        handlers.up(client, true);
      }
      return true;
    case "transport":
      state.transport = ev.transport;
      state.fallbackReason = ev.fallback_reason || "";
      return false;
    case "rejoined":
      handlers.rejoined(ev);
      return true;
    case "closed":
      if (state.status !== "down") {
        setStatus("down", ev.reason);
        handlers.down(ev.reason);
      }
      return true;
    default:
      return false;
  }
}

/** Try again now (the banner's button, the browser coming back online). */
export function retryNow() {
  if (state.client && state.status === "reconnecting") state.client.reconnectNow();
}

/** Close for good (the page goes away). */
export function close() {
  state.client?.close();
}

window.addEventListener("online", retryNow);
