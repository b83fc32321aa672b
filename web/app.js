// Garou chat page: plain DOM on top of the wasm client (./pkg/garou_wasm_client.js).
//
// URL parameters: ?nick=NAME&room=ROOM connects and joins at once (no form);
// ?transport=auto|webtransport|websocket picks the transport (default auto);
// ?gateway=http://host:port talks to a gateway other than the page's origin;
// ?token=JWT signs in with a token (gateways with auth configured; `garou token` mints one).

const params = new URLSearchParams(location.search);
const GATEWAY = params.get("gateway") || location.origin;
// Prefix of the gateway's HTTP API: same origin unless ?gateway= points elsewhere.
const API = params.get("gateway") ? GATEWAY.replace(/\/+$/, "") : "";
const TRANSPORTS = ["auto", "webtransport", "websocket"];
const REACTIONS = ["👍", "❤️", "😂", "🎉", "👀"];
const TYPING_SHOW_MS = 3000; // how long a typing notice stays without a new datagram
const TYPING_SEND_MS = 1000; // at most one typing datagram per second
const GROUP_MS = 5 * 60 * 1000; // consecutive messages of one author within this are grouped
const MAX_LOG = 2000; // entries kept per room
const FILE_NAME = /^[^/\\\n]+\.(png|jpe?g|gif|webp|avif|bmp|svg|heic|heif|ico|tiff?)$/i;
const ROLE_RANK = { owner: 0, admin: 1, moderator: 2, member: 3, guest: 4 };

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- state

const state = {
  client: null,
  nick: "",
  userId: 0,
  transport: "",
  options: null, // the options of the last successful connect, for reconnecting
  connected: false,
  rooms: new Map(), // name -> Room
  left: new Set(), // rooms we left: late events for them are ignored
  current: null, // room name
  browse: [], // listRooms()
  editing: null, // message id being edited in the current room
  lastTyping: 0,
  nodes: new Map(), // message id -> element, for the current room
};

function newRoom(name, kind = name.startsWith("dm:") ? "direct" : "group") {
  return {
    name,
    kind,
    role: null,
    members: new Map(), // user id -> { user, nick, role, online }
    messages: new Map(), // id -> { id, author, nick, ts, text, edited, deleted, attachment, reactions }
    log: [], // { type: "msg", id } | { type: "notice", ts, parts }
    unread: 0,
    typing: new Map(), // user id -> { nick, until }
    pendingPeer: null, // a direct conversation not opened yet: the peer's nick
    draft: "", // the composer's text while another room is shown
  };
}

function room(name) {
  let r = state.rooms.get(name);
  if (!r) {
    r = newRoom(name);
    state.rooms.set(name, r);
  }
  return r;
}

// ---------------------------------------------------------------- helpers

function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const PALETTE = ["#6366f1", "#0ea5e9", "#14b8a6", "#22c55e", "#eab308", "#f97316", "#ef4444", "#ec4899", "#a855f7", "#64748b"];
function colorFor(nick) {
  let x = 0;
  for (const ch of nick) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[x % PALETTE.length];
}

function avatar(nick, small = false) {
  const el = h("span", { class: small ? "avatar sm" : "avatar", "aria-hidden": "true" });
  el.textContent = [...(nick || "?")][0];
  el.style.background = colorFor(nick || "?");
  return el;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric" });

function dayLabel(ts) {
  const d = new Date(ts);
  const today = new Date();
  const yesterday = new Date(Date.now() - 864e5);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return dayFmt.format(d);
}

/** "<Code>: <message>" (the wasm client's rejections) -> { code, text }. */
function parseError(e) {
  const raw = String((e && e.message) || e || "unknown error");
  const m = /^([A-Za-z]+): ([\s\S]*)$/.exec(raw);
  return { code: (e && e.code) || (m && m[1]) || "", text: m ? m[2] : raw };
}

const ERROR_TITLES = {
  NickUnavailable: "That nick is not available",
  InvalidArgument: "That did not look right",
  Forbidden: "You are not allowed to do that",
  NoSuchRoom: "No such room",
  RoomExists: "That room already exists",
  NotMember: "You are not a member of that room",
  NoSuchUser: "No such user",
  NoSuchMessage: "That message is gone",
  RateLimited: "Slow down a little",
  LimitReached: "Limit reached",
  AuthFailed: "Sign-in failed",
  Timeout: "The server did not answer in time",
  Disconnected: "Not connected",
  ShuttingDown: "The server is restarting",
  SlowConsumer: "The connection fell behind",
  Unavailable: "The server cannot save messages right now",
};

function friendly(e) {
  const { code, text } = parseError(e);
  let detail = text;
  const taken = /nick (\S+) is (?:in use|taken)/.exec(text);
  if (code === "NickUnavailable" || taken) {
    // (The handshake may report a taken nick as AuthFailed: go by the message too.)
    return {
      code: "NickUnavailable",
      title: ERROR_TITLES.NickUnavailable,
      detail: taken ? `“${taken[1]}” is already in use. Pick another nick.` : text,
    };
  } else if (code === "Disconnected" && /WebSocket|WebTransport|fetch/i.test(text)) {
    detail = `Could not reach the gateway (${text}).`;
  }
  const title = ERROR_TITLES[code] || "Something went wrong";
  return { code, title, detail: detail.charAt(0).toUpperCase() + detail.slice(1) };
}

function toast(title, detail = "", kind = "error", ms = 6000) {
  const el = h(
    "div",
    { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status", "data-testid": "toast" },
    h("div", {}, h("b", { text: title }), detail ? h("span", { text: detail }) : null),
    h("button", { class: "icon-btn", "aria-label": "Dismiss", text: "×", onclick: () => el.remove() }),
  );
  $("toasts").append(el);
  setTimeout(() => el.remove(), ms);
}

function showError(e) {
  const f = friendly(e);
  toast(f.title, f.detail);
}

function displayName(r) {
  if (r.kind !== "direct") return r.title || r.name;
  if (r.pendingPeer) return r.pendingPeer;
  for (const m of r.members.values()) if (m.user !== state.userId) return m.nick;
  return "direct message";
}

function canPost(r) {
  return r && r.role !== "guest";
}

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

// ---------------------------------------------------------------- wasm

let wasm = null;
async function loadClient() {
  if (!wasm) {
    try {
      const mod = await import("./pkg/garou_wasm_client.js");
      await mod.default();
      wasm = mod;
    } catch (e) {
      console.error("loading the wasm client failed", e);
      throw new Error(`Internal: the browser client could not be loaded (${e.message || e})`);
    }
  }
  return wasm.GarouClient;
}

// ---------------------------------------------------------------- connection

async function connect(options, rooms) {
  const GarouClient = await loadClient();
  const client = await GarouClient.connect({ url: GATEWAY, ...options });
  state.client = client;
  state.options = options;
  state.nick = client.nick;
  state.userId = client.userId;
  state.connected = true;
  setTransport(client.transport);
  client.on((ev) => {
    if (client !== state.client) return; // an old session's last events
    try {
      onEvent(ev);
    } catch (e) {
      console.error("event handler failed", ev, e);
    }
  });
  $("banner").hidden = true;
  showScreen("app");
  renderMe();
  renderAll();
  for (const name of rooms) {
    try {
      await joinRoom(name, null, { select: name === rooms[0] });
    } catch (e) {
      showError(e);
    }
  }
  refreshBrowse();
  return client;
}

async function login(nick, roomName, transport) {
  showScreen(params.has("nick") || params.has("token") ? "connecting" : "login");
  $("login-submit").disabled = true;
  $("login-submit").textContent = "Connecting…";
  try {
    const token = params.get("token") || undefined;
    await connect({ nick, token, transport }, roomName ? [roomName] : []);
    $("message-input").focus();
  } catch (e) {
    console.warn("connect failed", e);
    $("login-nick").value = nick;
    if (roomName) $("login-room").value = roomName;
    $("login-transport").value = transport;
    showLogin(e);
  }
}

async function reconnect() {
  const btn = $("reconnect");
  btn.disabled = true;
  $("banner-text").textContent = "Reconnecting…";
  const names = [...state.rooms.values()].filter((r) => !r.pendingPeer).map((r) => r.name);
  if (state.current) names.sort((a, b) => (a === state.current ? -1 : b === state.current ? 1 : 0));
  try {
    await connect({ ...state.options, nick: state.nick }, names);
  } catch (e) {
    const f = friendly(e);
    $("banner-text").textContent = `${f.title}. ${f.detail}`;
  } finally {
    btn.disabled = false;
  }
}

function setTransport(kind, reason) {
  state.transport = kind;
  $("transport").textContent = kind;
  const conn = $("conn");
  conn.classList.toggle("up", state.connected);
  conn.classList.toggle("down", !state.connected);
  conn.classList.toggle("fallback", !!reason);
  conn.title = reason
    ? `Fell back to WebSocket: ${reason}`
    : kind === "webtransport"
      ? "Connected over WebTransport (HTTP/3)"
      : "Connected over WebSocket";
}

// ---------------------------------------------------------------- commands

async function joinRoom(name, kind, { select = true } = {}) {
  const c = state.client;
  const info = kind ? await c.createRoom(name, kind) : await c.join(name);
  const n = info.room.name;
  state.left.delete(n);
  const r = room(n);
  r.kind = info.room.kind;
  r.title = info.room.title || "";
  r.role = info.role;
  for (const m of info.members) r.members.set(m.user, { ...m });
  if (select || !state.current) selectRoom(n);
  else renderRooms();
  return info;
}

/** Forget a room we were removed from (kick, ban, deletion) and tell the user why. */
function dropRoom(name, why) {
  state.rooms.delete(name);
  state.left.add(name);
  toast("Room closed", why, "info");
  if (state.current === name) selectRoom([...state.rooms.keys()][0] || null);
  else renderRooms();
}

async function leaveRoom(name) {
  const r = state.rooms.get(name);
  if (!r) return;
  if (!r.pendingPeer) await state.client.leave(name);
  state.rooms.delete(name);
  state.left.add(name);
  if (state.current === name) {
    const next = [...state.rooms.keys()][0] || null;
    selectRoom(next);
  } else {
    renderRooms();
  }
  refreshBrowse();
}

async function refreshBrowse() {
  if (!state.connected) return;
  try {
    state.browse = await state.client.listRooms();
  } catch (e) {
    console.warn("listRooms failed", e);
  }
  renderRooms();
}

function openDirect(nick) {
  for (const r of state.rooms.values()) {
    if (r.kind === "direct" && displayName(r) === nick) return selectRoom(r.name);
  }
  const name = `@${nick}`;
  const r = room(name);
  r.kind = "direct";
  r.role = "member";
  r.pendingPeer = nick;
  selectRoom(name);
}

async function sendMessage(text) {
  const r = state.rooms.get(state.current);
  if (!r) return;
  if (r.pendingPeer) {
    const sent = await state.client.direct(r.pendingPeer, text);
    state.rooms.delete(r.name);
    const real = room(sent.room);
    real.kind = "direct";
    real.role = real.role || "member";
    if (real.members.size < 2) loadMembers(real.name);
    selectRoom(sent.room);
    return;
  }
  await state.client.send(r.name, text);
}

async function loadMembers(name) {
  try {
    const list = await state.client.listUsers(name);
    const r = state.rooms.get(name);
    if (!r) return;
    for (const m of list) r.members.set(m.user, { ...m });
    const me = r.members.get(state.userId);
    if (me) r.role = me.role;
    if (name === state.current) renderRoom();
    renderRooms();
  } catch (e) {
    console.warn("listUsers failed", name, e);
  }
}

// ---------------------------------------------------------------- events

function onEvent(ev) {
  switch (ev.type) {
    case "message": {
      const r = roomFor(ev.room);
      if (!r) return;
      r.messages.set(ev.id, {
        id: ev.id,
        author: ev.author,
        nick: ev.nick,
        ts: ev.ts,
        text: ev.text,
        attachment: ev.attachment || null,
        edited: false,
        deleted: false,
        reactions: new Map(),
      });
      pushLog(r, { type: "msg", id: ev.id });
      if (r.typing.delete(ev.author) && ev.room === state.current) renderTyping();
      if (ev.room === state.current) {
        appendEntry(r, r.log.length - 1, ev.author === state.userId);
      } else {
        if (ev.author !== state.userId) r.unread++;
        renderRooms();
      }
      break;
    }
    case "edit":
    case "delete": {
      const r = state.rooms.get(ev.room);
      const m = r && r.messages.get(ev.id);
      if (!m) return;
      if (ev.type === "edit") {
        m.text = ev.text;
        m.edited = true;
      } else {
        m.deleted = true;
        m.text = "";
        m.reactions.clear();
      }
      if (ev.room === state.current) updateMessage(r, ev.id);
      break;
    }
    case "reaction": {
      const r = state.rooms.get(ev.room);
      const m = r && r.messages.get(ev.id);
      if (!m) return;
      let who = m.reactions.get(ev.emoji);
      if (ev.added) {
        if (!who) m.reactions.set(ev.emoji, (who = new Map()));
        who.set(ev.user, ev.nick);
      } else if (who) {
        who.delete(ev.user);
        if (!who.size) m.reactions.delete(ev.emoji);
      }
      if (ev.room === state.current) updateMessage(r, ev.id);
      break;
    }
    case "member_joined":
    case "member_updated": {
      const r = roomFor(ev.room);
      if (!r) return;
      const before = r.members.get(ev.user);
      const online = before ? before.online : true;
      r.members.set(ev.user, { user: ev.user, nick: ev.nick, role: ev.role, online: ev.type === "member_joined" || online });
      if (ev.user === state.userId) {
        const promoted = r.role && r.role !== ev.role && ev.type === "member_updated";
        r.role = ev.role;
        if (promoted) toast("Your role changed", `You are now ${ev.role} in ${displayName(r)}.`, "info");
      }
      if (ev.type === "member_joined") {
        if (r.kind !== "direct") {
          const you = ev.user === state.userId;
          const suffix = ev.role === "guest" ? " as a guest" : "";
          if (you && ev.role === "owner") pushNotice(r, [h("b", { text: "You" }), ` created ${r.kind === "channel" ? "this channel" : "this room"}`]);
          else pushNotice(r, [h("b", { text: you ? "You" : ev.nick }), ` joined${suffix}`]);
        }
      } else if (before && before.nick !== ev.nick) {
        pushNotice(r, [h("b", { text: before.nick }), " is now known as ", h("b", { text: ev.nick })]);
      } else if (before && before.role !== ev.role) {
        pushNotice(r, [h("b", { text: ev.nick }), ` is now ${ev.role}`]);
      }
      if (ev.room === state.current) renderRoom(false);
      renderRooms();
      break;
    }
    case "member_moderated": {
      const r = state.rooms.get(ev.room);
      if (!r) return;
      const you = ev.user === state.userId;
      const what = { kick: "was removed", ban: "was banned", unban: "was unbanned", mute: "was muted", unmute: "was unmuted" }[ev.action];
      const until = ev.action === "mute" && ev.until ? ` until ${new Date(ev.until).toLocaleTimeString()}` : "";
      const reason = ev.reason ? ` (${ev.reason})` : "";
      if (you && (ev.action === "kick" || ev.action === "ban")) {
        dropRoom(ev.room, `You ${what} from ${displayName(r)}${reason}.`);
        return;
      }
      if (ev.action === "kick" || ev.action === "ban") r.members.delete(ev.user);
      if (you) toast(`You ${what}`, `In ${displayName(r)}${until}${reason}.`, "info");
      pushNotice(r, [h("b", { text: you ? "You" : ev.nick }), ` ${what}${until}${reason}`]);
      if (ev.room === state.current) renderRoom(false);
      break;
    }
    case "room_renamed": {
      const r = state.rooms.get(ev.room);
      if (!r) return;
      r.title = ev.title;
      pushNotice(r, [`Room title set to `, h("b", { text: ev.title })]);
      if (ev.room === state.current) renderRoom(false);
      renderRooms();
      break;
    }
    case "room_deleted": {
      const r = state.rooms.get(ev.room);
      if (r) dropRoom(ev.room, `${displayName(r)} was deleted.`);
      break;
    }
    case "member_left": {
      const r = state.rooms.get(ev.room);
      if (!r || ev.user === state.userId) return;
      r.members.delete(ev.user);
      r.typing.delete(ev.user);
      pushNotice(r, [h("b", { text: ev.nick }), " left"]);
      if (ev.room === state.current) renderRoom(false);
      break;
    }
    case "typing": {
      if (ev.user === state.userId) return;
      const r = state.rooms.get(ev.room);
      if (!r) return;
      r.typing.set(ev.user, { nick: ev.nick, until: Date.now() + TYPING_SHOW_MS });
      if (ev.room === state.current) renderTyping();
      setTimeout(() => ev.room === state.current && renderTyping(), TYPING_SHOW_MS + 50);
      break;
    }
    case "presence": {
      for (const r of state.rooms.values()) {
        const m = r.members.get(ev.user);
        if (m) {
          m.online = ev.online;
          m.nick = ev.nick || m.nick;
        }
        if (!ev.online) r.typing.delete(ev.user);
      }
      renderMembers();
      renderTyping();
      break;
    }
    case "transport":
      setTransport(ev.transport, ev.fallback_reason);
      if (ev.fallback_reason) console.warn("garou: fell back to WebSocket:", ev.fallback_reason);
      break;
    case "welcome":
      console.info("garou:", ev.message);
      flushTicketWaiters();
      break;
    case "error":
      showError({ code: ev.code, message: `${ev.code}: ${ev.message}` });
      break;
    case "closed":
      state.connected = false;
      setTransport(state.transport);
      if (ev.reason !== "closed by the client") {
        $("banner-text").textContent = `Connection lost: ${ev.reason}`;
        $("banner").hidden = false;
        $("reconnect").disabled = false;
      }
      renderComposer();
      break;
    case "receipt":
    case "promoted":
    case "demoted":
      break;
    default:
      console.debug("garou: unhandled event", ev);
  }
}

/** The room an event is for: known, or a direct room someone opened with us. */
function roomFor(name) {
  if (state.left.has(name)) return null;
  const known = state.rooms.has(name);
  const r = room(name);
  if (!known) {
    if (r.kind === "direct" || name.startsWith("dm:")) loadMembers(name);
    renderRooms();
  }
  return r;
}

function pushLog(r, entry) {
  r.log.push(entry);
  if (r.log.length > MAX_LOG) {
    const gone = r.log.splice(0, r.log.length - MAX_LOG);
    for (const e of gone) if (e.type === "msg") r.messages.delete(e.id);
  }
}

function pushNotice(r, parts) {
  pushLog(r, { type: "notice", ts: Date.now(), parts });
  if (r.name === state.current) appendEntry(r, r.log.length - 1, false);
}

// ---------------------------------------------------------------- rendering

function renderAll() {
  renderMe();
  renderRooms();
  renderRoom();
}

function renderMe() {
  $("me-nick").textContent = state.nick;
  $("me-avatar").replaceWith(Object.assign(avatar(state.nick), { id: "me-avatar" }));
}

function roomItem(r, active) {
  const glyph = r.kind === "channel" ? "»" : r.kind === "direct" ? "@" : "#";
  const btn = h(
    "button",
    {
      type: "button",
      class: `room-item${active ? " active" : ""}${r.unread ? " unread" : ""}`,
      "data-room": r.name,
      title: r.kind === "channel" ? `${displayName(r)} (channel)` : displayName(r),
      onclick: () => selectRoom(r.name),
    },
    h("span", { class: "room-glyph", text: glyph }),
    h("span", { class: "room-label", text: displayName(r) }),
    r.unread ? h("span", { class: "unread-count", text: r.unread > 99 ? "99+" : String(r.unread) }) : null,
  );
  return h("li", {}, btn);
}

function renderRooms() {
  const rooms = [...state.rooms.values()];
  const byName = (a, b) => displayName(a).localeCompare(displayName(b));
  $("room-list").replaceChildren(
    ...rooms.filter((r) => r.kind !== "direct").sort(byName).map((r) => roomItem(r, r.name === state.current)),
  );
  const dms = rooms.filter((r) => r.kind === "direct").sort(byName);
  $("dm-section").hidden = dms.length === 0;
  $("dm-list").replaceChildren(...dms.map((r) => roomItem(r, r.name === state.current)));

  const others = state.browse.filter((b) => b.kind !== "direct" && !state.rooms.has(b.name));
  $("browse-section").hidden = !state.connected || (others.length === 0 && state.browse.length === 0);
  $("browse-list").replaceChildren(
    ...others
      .sort((a, b) => b.members - a.members || a.name.localeCompare(b.name))
      .map((b) =>
        h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: "room-item",
              title: `Join ${b.name} (${b.kind}, ${b.members} member${b.members === 1 ? "" : "s"})`,
              onclick: () => joinRoom(b.name, null).catch(showError).finally(refreshBrowse),
            },
            h("span", { class: "room-glyph", text: b.kind === "channel" ? "»" : "#" }),
            h("span", { class: "room-label", text: b.name }),
            h("span", { class: "room-meta", title: `${b.members} member${b.members === 1 ? "" : "s"}`, text: `${b.members}` }),
          ),
        ),
      ),
  );
  const unread = rooms.reduce((n, r) => n + r.unread, 0);
  const cur = state.rooms.get(state.current);
  document.title = `${unread ? `(${unread}) ` : ""}${cur ? `${cur.kind === "direct" ? "@" : "#"}${displayName(cur)} · ` : ""}Garou`;
}

function selectRoom(name) {
  const input = $("message-input");
  const prev = state.rooms.get(state.current);
  if (prev && prev.name !== name) prev.draft = input.value;
  const next = name && state.rooms.get(name);
  if (prev !== next || !next) {
    input.value = (next && next.draft) || "";
    input.dispatchEvent(new Event("autosize"));
  }
  state.current = name;
  state.editing = null;
  const r = name && state.rooms.get(name);
  if (r) r.unread = 0;
  renderRooms();
  renderRoom();
  if (r) $("message-input").focus();
}

/** The header, the log (when `log`), the members, the typing line and the composer. */
function renderRoom(log = true) {
  const r = state.rooms.get(state.current);
  $("room-title").textContent = r ? displayName(r) : "";
  $("room-icon").textContent = r ? (r.kind === "channel" ? "»" : r.kind === "direct" ? "@" : "#") : "";
  $("room-kind").textContent = r && r.kind !== "group" ? r.kind : "";
  $("room-role").textContent = r && r.role && r.kind !== "direct" ? `You are ${r.role === "owner" ? "the owner" : r.role === "admin" ? "an admin" : `a ${r.role}`}` : "";
  $("leave-room").hidden = !r || r.kind === "direct";
  $("messages").hidden = !r;
  $("empty").hidden = !!r;
  if (log) renderLog(r);
  renderMembers();
  renderTyping();
  renderComposer();
}

function renderComposer() {
  const r = state.rooms.get(state.current);
  const input = $("message-input");
  const ok = !!r && canPost(r) && state.connected;
  input.disabled = !ok;
  $("send").disabled = !ok;
  $("attach").disabled = !ok;
  $("attach-btn").classList.toggle("disabled", !ok);
  input.placeholder = !r
    ? "Join a room to start chatting"
    : !state.connected
      ? "Disconnected"
      : !canPost(r)
        ? "You can read this channel. Ask an admin to let you post."
        : `Message ${r.kind === "direct" ? "@" : "#"}${displayName(r)}`;
}

function renderLog(r) {
  const box = $("messages");
  state.nodes.clear();
  box.replaceChildren();
  if (!r) return;
  box.append(
    h(
      "div",
      { class: "log-start" },
      h("div", { class: "empty-art small", "aria-hidden": "true" }),
      h("h2", { text: r.kind === "direct" ? `Your conversation with ${displayName(r)}` : `Welcome to #${r.name}` }),
      h(
        "p",
        { class: "muted" },
        r.kind === "channel"
          ? "A channel: new members read along as guests until someone promotes them."
          : r.kind === "direct"
            ? "Only the two of you can see these messages."
            : "This is the start of the room. Say hello!",
      ),
    ),
  );
  for (let i = 0; i < r.log.length; i++) appendEntry(r, i, false, true);
  box.scrollTop = box.scrollHeight;
}

/** Append one log entry of the current room to the view. */
function appendEntry(r, idx, mine, bulk = false) {
  const box = $("messages");
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const entry = r.log[idx];
  const prev = idx > 0 ? r.log[idx - 1] : null;
  const ts = entry.type === "msg" ? r.messages.get(entry.id).ts : entry.ts;
  const prevTs = prev ? (prev.type === "msg" ? r.messages.get(prev.id)?.ts : prev.ts) : null;
  if (prevTs == null || new Date(prevTs).toDateString() !== new Date(ts).toDateString()) {
    box.append(h("div", { class: "day", role: "separator", text: dayLabel(ts) }));
  }
  if (entry.type === "notice") {
    box.append(h("div", { class: "notice", "data-testid": "notice" }, ...entry.parts.map((p) => (p instanceof Node ? p.cloneNode(true) : p))));
  } else {
    const m = r.messages.get(entry.id);
    const pm = prev && prev.type === "msg" ? r.messages.get(prev.id) : null;
    const cont = !!pm && pm.author === m.author && m.ts - pm.ts < GROUP_MS && !pm.deleted;
    const node = messageNode(r, m, cont);
    state.nodes.set(m.id, node);
    box.append(node);
  }
  if (!bulk && (nearBottom || mine)) box.scrollTop = box.scrollHeight;
}

function updateMessage(r, id) {
  const old = state.nodes.get(id);
  const m = r.messages.get(id);
  if (!old || !m) return;
  const node = messageNode(r, m, old.classList.contains("cont"));
  state.nodes.set(id, node);
  old.replaceWith(node);
}

function messageNode(r, m, cont) {
  const mine = m.author === state.userId;
  const time = new Date(m.ts);
  const node = h("div", {
    class: `msg${cont ? " cont" : ""}${mine ? " mine" : ""}${m.deleted ? " deleted" : ""}`,
    "data-testid": "message",
    "data-id": String(m.id),
    "data-author": m.nick,
  });
  const body = h(
    "div",
    { class: "msg-body" },
    h(
      "div",
      { class: "msg-head" },
      h("span", { class: "msg-author", "data-testid": "message-author", text: m.nick }),
      h("time", { class: "msg-time", datetime: time.toISOString(), title: fullFmt.format(time), text: timeFmt.format(time) }),
    ),
  );
  if (state.editing === m.id && !m.deleted) {
    body.append(editor(r, m));
    node.classList.add("editing");
  } else {
    // An attachment sent without a caption carries its file name: shown as a file label.
    const nameOnly = !!m.attachment && !m.deleted && !m.edited && FILE_NAME.test(m.text);
    body.append(
      h(
        "div",
        { class: `msg-text${nameOnly ? " attachment-name" : ""}`, "data-testid": "message-text" },
        m.deleted ? "This message was deleted." : m.text,
        m.edited && !m.deleted ? h("span", { class: "msg-edited", title: "edited", text: "(edited)" }) : null,
      ),
    );
    if (m.attachment && !m.deleted) body.append(attachmentNode(m));
  }
  const reactions = h("div", { class: "reactions" });
  for (const [emoji, who] of m.reactions) {
    const minePick = who.has(state.userId);
    reactions.append(
      h(
        "button",
        {
          type: "button",
          class: `reaction${minePick ? " mine" : ""}`,
          "data-testid": "reaction",
          "data-emoji": emoji,
          title: [...who.values()].join(", "),
          "aria-pressed": String(minePick),
          onclick: () => react(r, m, emoji),
        },
        h("span", { class: "emoji", text: emoji }),
        h("span", { class: "n", text: String(who.size) }),
      ),
    );
  }
  body.append(reactions);

  const actions = h("div", { class: "msg-actions" });
  if (canPost(r)) {
    for (const emoji of REACTIONS) {
      actions.append(h("button", { type: "button", class: "emoji", title: `React ${emoji}`, "aria-label": `React ${emoji}`, text: emoji, onclick: () => react(r, m, emoji) }));
    }
  }
  const modAny = r.kind !== "direct" && ROLE_RANK[r.role] <= ROLE_RANK.moderator;
  if (mine || modAny) actions.append(h("span", { class: "sep" }));
  if (mine) {
    actions.append(h("button", { type: "button", class: "txt", "data-testid": "edit", text: "Edit", onclick: () => startEdit(m.id) }));
  }
  if (mine || modAny) {
    actions.append(h("button", { type: "button", class: "txt", text: "Delete", onclick: () => state.client.delete(r.name, m.id).catch(showError) }));
  }

  node.append(avatar(m.nick), h("span", { class: "msg-time-side", text: timeFmt.format(time) }), body);
  if (actions.childElementCount) node.append(actions);
  return node;
}

// ---------------------------------------------------------------- attachments

/** A download URL of an upload, with this session's ticket (which changes per connection). */
function attachmentUrl(id) {
  const ticket = state.client ? state.client.ticket : "";
  return `${API}/api/uploads/${encodeURIComponent(id)}?ticket=${encodeURIComponent(ticket)}`;
}

// Images rendered before the session's ticket arrived (it comes with the welcome).
const ticketWaiters = [];
function withTicket(fn) {
  if (state.client && state.client.ticket) fn();
  else ticketWaiters.push(fn);
}
function flushTicketWaiters() {
  for (const fn of ticketWaiters.splice(0)) fn();
}

/** An attachment shown inline: a thumbnail that opens the full image in a new tab. */
function attachmentNode(m) {
  const link = h("a", {
    class: "attachment loading",
    target: "_blank",
    rel: "noopener",
    title: "Open the full image",
  });
  const img = h("img", { "data-testid": "attachment", alt: m.text || "image", decoding: "async" });
  img.addEventListener("load", () => {
    link.classList.remove("loading");
    // Icons and tiny images are scaled up (crisply) so they do not get lost.
    const w = img.naturalWidth;
    const hgt = img.naturalHeight;
    if (w && hgt && Math.max(w, hgt) < 64) {
      const k = Math.min(4, Math.floor(64 / Math.max(w, hgt)));
      img.style.width = `${w * k}px`;
      img.classList.add("pixelated");
    }
    // Keep the log pinned to the bottom when the image grows it.
    const box = $("messages");
    if (box.scrollHeight - box.scrollTop - box.clientHeight < img.clientHeight + 120) box.scrollTop = box.scrollHeight;
  });
  img.addEventListener("error", () => {
    // Not an image (or gone): a plain file link instead.
    link.classList.remove("loading");
    link.classList.add("file");
    link.title = "Open the attachment";
    img.replaceWith(h("span", { class: "file-chip" }, h("span", { class: "file-icon", "aria-hidden": "true", text: "📎" }), "Attachment"));
  });
  withTicket(() => {
    const url = attachmentUrl(m.attachment);
    link.href = url;
    img.src = url;
  });
  link.append(img);
  return link;
}

function formatSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

const UPLOAD_ERRORS = {
  413: "That file is too large",
  415: "That kind of file is not accepted",
  400: "That file could not be uploaded",
  403: "Your session expired: reconnect and try again",
};

/** POST a file to the gateway; resolves to {id, url}. `onProgress(fraction)`. */
function postFile(file, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const url = `${API}/api/uploads?ticket=${encodeURIComponent(state.client.ticket)}&name=${encodeURIComponent(file.name || "image")}`;
    xhr.open("POST", url);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.addEventListener("progress", (e) => e.lengthComputable && onProgress(e.loaded / e.total));
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if ((xhr.status === 201 || xhr.status === 200) && body && body.id) return resolve(body);
      const title = UPLOAD_ERRORS[xhr.status] || "The upload failed";
      let detail = (body && body.message) || `The server answered ${xhr.status}.`;
      if (xhr.status === 413) detail = `${file.name} is ${formatSize(file.size)}. ${detail.charAt(0).toUpperCase()}${detail.slice(1)}.`;
      reject(Object.assign(new Error(detail), { title }));
    });
    xhr.addEventListener("error", () =>
      reject(Object.assign(new Error("The connection to the server was interrupted."), { title: "The upload failed" })),
    );
    xhr.addEventListener("abort", () => reject(Object.assign(new Error("cancelled"), { cancelled: true })));
    signal.addEventListener("abort", () => xhr.abort());
    xhr.send(file);
  });
}

/** Upload a picked image and post it to the current room (caption: the composer's text). */
async function attachFile(file) {
  const r = state.rooms.get(state.current);
  if (!r || !state.client || !state.connected) return;
  if (r.pendingPeer) {
    toast("Say hello first", `Send ${r.pendingPeer} a message to start the conversation, then share images.`, "info");
    return;
  }
  if (file.type && !file.type.startsWith("image/")) {
    toast("Only images can be attached here", `${file.name} is not an image.`);
    return;
  }
  const ctl = new AbortController();
  const preview = URL.createObjectURL(file);
  const bar = h("span", { class: "upload-bar" });
  const status = h("span", { class: "upload-status", "data-testid": "upload-status", text: "Uploading…" });
  const chip = h(
    "div",
    { class: "upload", "data-testid": "upload" },
    h("img", { class: "upload-thumb", src: preview, alt: "" }),
    h(
      "div",
      { class: "upload-text" },
      h("span", { class: "upload-name", text: file.name }),
      h("span", { class: "upload-meta" }, status, h("span", { class: "upload-size", text: ` · ${formatSize(file.size)}` })),
      h("span", { class: "upload-track" }, bar),
    ),
    h("button", { type: "button", class: "icon-btn", title: "Cancel", "aria-label": "Cancel the upload", text: "×", onclick: () => ctl.abort() }),
  );
  $("uploads").append(chip);
  const done = () => {
    chip.remove();
    URL.revokeObjectURL(preview);
  };
  try {
    const up = await postFile(
      file,
      (f) => {
        bar.style.width = `${Math.round(f * 100)}%`;
        status.textContent = f < 1 ? `Uploading… ${Math.round(f * 100)}%` : "Sending…";
      },
      ctl.signal,
    );
    status.textContent = "Sending…";
    bar.style.width = "100%";
    // The composer's text becomes the caption; the server wants some text, so the file
    // name stands in for an empty caption.
    const input = $("message-input");
    const caption = state.current === r.name ? input.value.trim() : "";
    if (caption) {
      input.value = "";
      input.dispatchEvent(new Event("autosize"));
    }
    await state.client.send(r.name, caption || file.name || "image", up.id);
    done();
  } catch (e) {
    done();
    if (e && e.cancelled) return;
    if (e && e.title) toast(e.title, e.message);
    else showError(e);
  }
}

function react(r, m, emoji) {
  const who = m.reactions.get(emoji);
  const had = !!who && who.has(state.userId);
  state.client.react(r.name, m.id, emoji, !had).catch(showError);
}

function startEdit(id) {
  const r = state.rooms.get(state.current);
  state.editing = id;
  updateMessage(r, id);
  const ta = state.nodes.get(id)?.querySelector("textarea");
  if (ta) {
    ta.focus();
    ta.setSelectionRange(ta.value.length, ta.value.length);
  }
}

function editor(r, m) {
  const finish = () => {
    state.editing = null;
    updateMessage(r, m.id);
  };
  const ta = h("textarea", { rows: "2", "data-testid": "edit-input", "aria-label": "Edit message" });
  ta.value = m.text;
  ta.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      e.preventDefault();
      finish();
    } else if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      const text = ta.value.trim();
      if (!text || text === m.text) return finish();
      state.client
        .edit(r.name, m.id, text)
        .then(finish)
        .catch((err) => {
          showError(err);
          ta.focus();
        });
    }
  });
  return h("div", { class: "msg-edit" }, ta, h("div", { class: "msg-edit-hint", text: "Enter to save · Esc to cancel" }));
}

function renderMembers() {
  const r = state.rooms.get(state.current);
  const list = r ? [...r.members.values()] : [];
  list.sort(
    (a, b) =>
      Number(b.online) - Number(a.online) ||
      ROLE_RANK[a.role] - ROLE_RANK[b.role] ||
      a.nick.localeCompare(b.nick),
  );
  $("member-count").textContent = r ? String(list.length) : "";
  $("members").replaceChildren(
    ...list.map((m) => {
      const me = m.user === state.userId;
      return h(
        "div",
        {
          class: `member${m.online ? " online" : ""}`,
          "data-testid": "member",
          "data-nick": m.nick,
          "data-role": m.role,
          "data-online": String(m.online),
          title: `${m.nick}: ${m.role}, ${m.online ? "online" : "offline"}`,
        },
        h("span", { class: "who" }, avatar(m.nick, true), h("span", { class: "presence", "aria-label": m.online ? "online" : "offline" })),
        h(
          "span",
          { class: "member-text" },
          h("span", { class: "member-nick" }, m.nick, me ? h("span", { class: "you", text: " (you)" }) : null),
          h("span", { class: `member-role role-${m.role}`, text: m.online ? m.role : `${m.role} · offline` }),
        ),
        !me && r.kind !== "direct"
          ? h("button", { type: "button", class: "icon-btn dm-btn", title: `Message ${m.nick}`, text: "Message", onclick: () => openDirect(m.nick) })
          : null,
      );
    }),
  );
}

function renderTyping() {
  const r = state.rooms.get(state.current);
  const now = Date.now();
  const names = [];
  if (r) {
    for (const [user, t] of r.typing) {
      if (t.until <= now) r.typing.delete(user);
      else names.push(t.nick);
    }
  }
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length === 3) text = `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
  else if (names.length > 3) text = `${names[0]}, ${names[1]} and ${names.length - 2} others are typing…`;
  const el = $("typing");
  if (el.textContent !== text) el.textContent = text;
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
  $("reconnect").addEventListener("click", reconnect);

  const input = $("message-input");
  const autosize = () => {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight + 2, 180)}px`;
  };
  input.addEventListener("autosize", autosize);
  input.addEventListener("input", () => {
    autosize();
    const r = state.rooms.get(state.current);
    const now = Date.now();
    if (input.value && r && !r.pendingPeer && canPost(r) && state.connected && now - state.lastTyping >= TYPING_SEND_MS) {
      state.lastTyping = now;
      state.client.typing(r.name);
    }
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("composer").requestSubmit();
    } else if (e.key === "ArrowUp" && !input.value) {
      // Edit my last message, as in most chat apps.
      const r = state.rooms.get(state.current);
      const last = r && [...r.log].reverse().find((x) => x.type === "msg" && r.messages.get(x.id)?.author === state.userId);
      if (last) {
        e.preventDefault();
        startEdit(last.id);
      }
    }
  });
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || !state.client) return;
    input.value = "";
    autosize();
    state.lastTyping = 0;
    sendMessage(text).catch((err) => {
      showError(err);
      if (!input.value) {
        input.value = text;
        autosize();
      }
    });
  });

  // Pasting an image into the composer attaches it.
  input.addEventListener("paste", (e) => {
    const files = [...(e.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
    if (!files.length || $("attach").disabled) return;
    e.preventDefault();
    for (const f of files) attachFile(f);
  });
  $("attach").addEventListener("change", (e) => {
    const files = [...e.target.files];
    e.target.value = ""; // picking the same file again fires change again
    for (const f of files) attachFile(f);
  });

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
    if (!nick || nick === state.nick) return;
    state.client
      .setNick(nick)
      .then((n) => {
        state.nick = n;
        renderMe();
        toast("Nick changed", `You are now ${n}.`, "info", 3000);
      })
      .catch(showError);
  });

  window.addEventListener("pagehide", () => state.client && state.client.close());
  // Refresh the list of rooms to browse now and then.
  setInterval(() => state.connected && document.visibilityState === "visible" && refreshBrowse(), 5000);
  window.addEventListener("focus", () => state.connected && refreshBrowse());
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
