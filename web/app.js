// Garou chat page: plain DOM on top of the wasm client (./pkg/garou_wasm_client.js), as
// ES modules without a build step:
//   js/state.js       what the page knows (rooms, entries sorted by offset, no duplicates)
//   js/connection.js  connecting, and reconnecting by itself
//   js/rooms.js       joins with history, catch-up after a reconnect, sending (outbox)
//   js/events.js      session events -> state
//   js/render.js      batched rendering, the windowed message log
//   js/composer.js    composer, editing, reactions, attachments
//   js/util.js        DOM and formatting helpers
//
// URL parameters: ?nick=NAME&room=ROOM connects and joins at once (no form);
// ?transport=auto|webtransport|websocket picks the transport (default auto);
// ?gateway=http://host:port talks to a gateway other than the page's origin;
// ?token=JWT signs in with a token (gateways with auth configured; `garou token` mints one).

import { $, h, friendly, showError, toast } from "./js/util.js";
import { state } from "./js/state.js";
import { connect, loadClient, onConnection, retryNow } from "./js/connection.js";
import { onEvent, hooks } from "./js/events.js";
import { actions, invalidate, jumpToEnd, renderMe, wireLog } from "./js/render.js";
import { joinRoom, leaveRoom, loadOlder, onRejoined, onSelect, openDirect, refreshBrowse, selectRoom } from "./js/rooms.js";
import {
  attachmentUrl,
  editor,
  flushTicketWaiters,
  react,
  remove,
  startEdit,
  switchDraft,
  wireComposer,
  withTicket,
} from "./js/composer.js";

const params = new URLSearchParams(location.search);
// For the browser tests and benchmarks (and curious developers): the page's state.
globalThis.__garou = { state };
const TRANSPORTS = ["auto", "webtransport", "websocket"];

Object.assign(actions, {
  react,
  remove,
  startEdit,
  editor,
  openDirect,
  selectRoom,
  loadOlder,
  attachmentUrl,
  withTicket,
  joinRoom: (name) => joinRoom(name).catch(showError).finally(refreshBrowse),
});
hooks.welcome = flushTicketWaiters;
onSelect((name) => switchDraft(state.current, name));

// ---------------------------------------------------------------- screens

function showScreen(which) {
  $("login").hidden = which !== "login";
  $("connecting").hidden = which !== "connecting";
  $("app").hidden = which !== "app";
}

function showLogin(error) {
  showScreen("login");
  const box = $("login-error");
  if (error) {
    const f = friendly(error);
    box.replaceChildren(h("b", { text: f.title }), h("br"), f.detail);
    box.hidden = false;
  } else {
    box.hidden = true;
  }
  $("login-submit").disabled = false;
  $("login-submit").textContent = "Connect";
  const nick = $("login-nick");
  nick.focus();
  if (error && friendly(error).code === "NickUnavailable") nick.select();
}

// ---------------------------------------------------------------- connection

onConnection({
  event: onEvent,
  status: () => invalidate("conn", "members", "rooms"),
  up(client, again) {
    showScreen("app");
    renderMe();
    invalidate("conn", "rooms", "room");
    // (After a reconnect the client rejoins the rooms itself: see `rejoined`.)
    if (again) refreshBrowse();
  },
  down() {
    for (const r of state.rooms.values()) r.joined = false;
    invalidate("conn", "members", "composer", "rooms", "log");
  },
  rejoined: (ev) => onRejoined(ev).catch((e) => console.warn("rejoin of", ev.room, "failed:", String(e && e.message))),
});

async function login(nick, roomName, transport) {
  showScreen(params.has("nick") || params.has("token") ? "connecting" : "login");
  $("login-submit").disabled = true;
  $("login-submit").textContent = "Connecting…";
  try {
    const token = params.get("token") || undefined;
    await connect({ nick, token, transport });
  } catch (e) {
    console.warn("connect failed", e);
    $("login-nick").value = nick;
    if (roomName) $("login-room").value = roomName;
    $("login-transport").value = transport;
    showLogin(e);
    return;
  }
  if (roomName) await joinRoom(roomName).catch(showError);
  refreshBrowse();
}

// ---------------------------------------------------------------- wiring

function wire() {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const nick = $("login-nick").value.trim();
    const roomName = $("login-room").value.trim().replace(/^#/, "");
    if (!nick) {
      showLogin(new Error("InvalidArgument: please enter a nick"));
      return;
    }
    if (!/^[\p{L}\p{N}_.-]{1,32}$/u.test(nick)) {
      showLogin(new Error("InvalidArgument: nicks are 1-32 letters, digits, _ - ."));
      return;
    }
    login(nick, roomName, $("login-transport").value);
  });

  const roomForm = $("room-form");
  const roomInput = $("room-name");
  const submitRoom = (create) => {
    const name = roomInput.value.trim().replace(/^#/, "");
    if (!name) {
      roomInput.focus();
      return;
    }
    const kind = create ? roomForm.querySelector("input[name=kind]:checked").value : null;
    joinRoom(name, kind)
      .then(() => {
        roomInput.value = "";
        refreshBrowse();
      })
      .catch(showError);
  };
  roomForm.addEventListener("submit", (e) => {
    e.preventDefault();
    submitRoom(false);
  });
  $("create-room").addEventListener("click", () => submitRoom(true));
  $("refresh-rooms").addEventListener("click", refreshBrowse);
  $("leave-room").addEventListener("click", () => leaveRoom(state.current).catch(showError));
  $("reconnect").addEventListener("click", retryNow);
  $("jump").addEventListener("click", jumpToEnd);

  wireComposer();
  wireLog();

  $("me-nick").addEventListener("click", () => {
    $("me-nick").hidden = true;
    $("nick-form").hidden = false;
    $("nick-edit").value = state.nick;
    $("nick-edit").select();
  });
  const endNickEdit = () => {
    $("nick-form").hidden = true;
    $("me-nick").hidden = false;
  };
  $("nick-edit").addEventListener("keydown", (e) => e.key === "Escape" && endNickEdit());
  $("nick-edit").addEventListener("blur", endNickEdit);
  $("nick-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const nick = $("nick-edit").value.trim();
    endNickEdit();
    if (!nick || nick === state.nick || !state.client) return;
    state.client
      .setNick(nick)
      .then((n) => {
        state.nick = n;
        renderMe();
        toast("Nick changed", `You are now ${n}.`, "info", 3000);
      })
      .catch(showError);
  });

  // Refresh the list of rooms to browse now and then.
  setInterval(() => document.visibilityState === "visible" && refreshBrowse(), 5000);
  window.addEventListener("focus", refreshBrowse);
}

function main() {
  wire();
  const transport = TRANSPORTS.includes(params.get("transport")) ? params.get("transport") : "auto";
  $("login-transport").value = transport;
  const nick = params.get("nick");
  const roomName = (params.get("room") || "").replace(/^#/, "");
  if (roomName) $("login-room").value = roomName;
  if (nick || params.get("token")) {
    $("login-nick").value = nick || "";
    $("connecting-text").textContent = nick ? `Connecting as ${nick}…` : "Signing in…";
    login(nick || "", roomName, transport);
  } else {
    showLogin();
  }
  // Warm the wasm module up while the user types a nick.
  loadClient().catch((e) => {
    if (!nick) showLogin(e);
  });
}

main();
