// Rendering: the sidebar, the room header, the members, the typing line, the composer's
// state and the message log. Changes to the state are rendered in one batch per animation
// frame (`invalidate`), and the log is a window over the room's entries: at most a few
// hundred are in the DOM, older ones come back when scrolled to (from memory, then from
// the server's history), newer ones when scrolled down again.

import { $, h, avatar, dayLabel, fullFmt, timeFmt } from "./util.js";
import { state, online, indexOf } from "./state.js";

/** Entries rendered while following the newest messages. */
export const WINDOW = 150;
/** Entries rendered at most (scrolled back). */
const MAX_RENDERED = 450;
/** Entries added to the window per scroll step. */
const CHUNK = 100;
/** Pixels from the top at which older entries are added. */
const NEAR_TOP = 400;
const GROUP_MS = 5 * 60 * 1000; // consecutive messages of one author within this are grouped
const REACTIONS = ["👍", "❤️", "😂", "🎉", "👀"];
const FILE_NAME = /^[^/\\\n]+\.(png|jpe?g|gif|webp|avif|bmp|svg|heic|heif|ico|tiff?)$/i;
export const ROLE_RANK = { owner: 0, admin: 1, moderator: 2, member: 3, guest: 4 };

/** What the views call back into (set by app.js): react, startEdit, remove, openDirect, selectRoom, joinRoom, loadOlder, attachmentUrl, withTicket. */
export const actions = {};

// ---------------------------------------------------------------- batching

const dirty = { rooms: false, room: false, members: false, typing: false, composer: false, conn: false, log: false };
let scheduled = false;

/** Mark parts of the page as out of date; they are rendered at the next animation frame. */
export function invalidate(...parts) {
  for (const p of parts) dirty[p] = true;
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(flush);
  // rAF does not run in a hidden tab: a timer catches up (throttled there, which is fine).
  setTimeout(flush, 250);
}

/** Render everything marked out of date now. */
export function flush() {
  if (!scheduled) return;
  scheduled = false;
  const d = { ...dirty };
  for (const k of Object.keys(dirty)) dirty[k] = false;
  if (d.conn) renderConn();
  if (d.rooms) renderRooms();
  if (d.room) renderHeader();
  if (d.room || d.members) renderMembers();
  if (d.room || d.typing) renderTyping();
  if (d.room || d.composer || d.conn) renderComposer();
  if (d.room || d.log) flushLog();
}

// ---------------------------------------------------------------- small views

export function displayName(r) {
  if (r.kind !== "direct") return r.title || r.name;
  if (r.pendingPeer) return r.pendingPeer;
  for (const m of r.members.values()) if (m.user !== state.userId) return m.nick;
  return "direct message";
}

export function canPost(r) {
  return !!r && r.role !== "guest";
}

export function renderMe() {
  $("me-nick").textContent = state.nick;
  $("me-avatar").replaceWith(Object.assign(avatar(state.nick), { id: "me-avatar" }));
}

/** The connection dot, its label and the banner. */
function renderConn() {
  const s = state.status;
  const conn = $("conn");
  conn.dataset.state = s;
  conn.classList.toggle("up", s === "up");
  conn.classList.toggle("down", s === "down");
  conn.classList.toggle("reconnecting", s === "reconnecting" || s === "connecting");
  conn.classList.toggle("fallback", s === "up" && !!state.fallbackReason);
  $("transport").textContent = s === "up" ? state.transport : s === "down" ? "offline" : "reconnecting…";
  conn.title =
    s !== "up"
      ? state.statusDetail || s
      : state.fallbackReason
        ? `Fell back to WebSocket: ${state.fallbackReason}`
        : state.transport === "webtransport"
          ? "Connected over WebTransport (HTTP/3)"
          : "Connected over WebSocket";
  const banner = $("banner");
  banner.dataset.state = s;
  banner.hidden = s === "up" || s === "idle";
  if (s === "reconnecting" || s === "connecting") {
    $("banner-text").textContent = `Connection lost${state.statusDetail ? ` (${state.statusDetail})` : ""}. Reconnecting…`;
    $("reconnect").textContent = "Retry now";
  } else if (s === "down") {
    $("banner-text").textContent = `Disconnected${state.statusDetail ? `: ${state.statusDetail}` : ""}.`;
    $("reconnect").textContent = "Reconnect";
  }
  $("members").classList.toggle("stale", s !== "up");
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
      onclick: () => actions.selectRoom(r.name),
    },
    h("span", { class: "room-glyph", text: glyph }),
    h("span", { class: "room-label", text: displayName(r) }),
    r.unread ? h("span", { class: "unread-count", text: r.unread > 99 ? "99+" : String(r.unread) }) : null,
  );
  return h("li", {}, btn);
}

export function renderRooms() {
  const rooms = [...state.rooms.values()];
  const byName = (a, b) => displayName(a).localeCompare(displayName(b));
  $("room-list").replaceChildren(
    ...rooms.filter((r) => r.kind !== "direct").sort(byName).map((r) => roomItem(r, r.name === state.current)),
  );
  const dms = rooms.filter((r) => r.kind === "direct").sort(byName);
  $("dm-section").hidden = dms.length === 0;
  $("dm-list").replaceChildren(...dms.map((r) => roomItem(r, r.name === state.current)));

  const others = state.browse.filter((b) => b.kind !== "direct" && !state.rooms.has(b.name));
  $("browse-section").hidden = !online() || (others.length === 0 && state.browse.length === 0);
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
              onclick: () => actions.joinRoom(b.name),
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

function renderHeader() {
  const r = state.rooms.get(state.current);
  $("room-title").textContent = r ? displayName(r) : "";
  $("room-icon").textContent = r ? (r.kind === "channel" ? "»" : r.kind === "direct" ? "@" : "#") : "";
  $("room-kind").textContent = r && r.kind !== "group" ? r.kind : "";
  $("room-role").textContent =
    r && r.role && r.kind !== "direct" ? `You are ${r.role === "owner" ? "the owner" : r.role === "admin" ? "an admin" : `a ${r.role}`}` : "";
  $("leave-room").hidden = !r || r.kind === "direct";
  $("messages").hidden = !r;
  $("empty").hidden = !!r;
}

export function renderComposer() {
  const r = state.rooms.get(state.current);
  const input = $("message-input");
  const up = online();
  // While reconnecting messages can still be written: they are sent once connected again.
  const ok = !!r && canPost(r) && (up || (state.status === "reconnecting" && !r.pendingPeer));
  input.disabled = !ok;
  $("send").disabled = !ok;
  $("attach").disabled = !ok || !up;
  $("attach-btn").classList.toggle("disabled", !ok || !up);
  input.placeholder = !r
    ? "Join a room to start chatting"
    : state.status === "down"
      ? "Disconnected"
      : !canPost(r)
        ? "You can read this channel. Ask an admin to let you post."
        : `Message ${r.kind === "direct" ? "@" : "#"}${displayName(r)}${up ? "" : " (sent when reconnected)"}`;
}

export function renderMembers() {
  const r = state.rooms.get(state.current);
  const list = r ? [...r.members.values()] : [];
  const live = online();
  list.sort(
    (a, b) => Number(b.online) - Number(a.online) || ROLE_RANK[a.role] - ROLE_RANK[b.role] || a.nick.localeCompare(b.nick),
  );
  $("member-count").textContent = r ? String(list.length) : "";
  $("members").replaceChildren(
    ...list.map((m) => {
      const me = m.user === state.userId;
      // Offline ourselves, nobody's presence is known: every dot is grey.
      const on = live && m.online;
      return h(
        "div",
        {
          class: `member${on ? " online" : ""}`,
          "data-testid": "member",
          "data-nick": m.nick,
          "data-role": m.role,
          "data-online": live ? String(m.online) : "unknown",
          title: `${m.nick}: ${m.role}, ${live ? (m.online ? "online" : "offline") : "presence unknown while disconnected"}`,
        },
        h("span", { class: "who" }, avatar(m.nick, true), h("span", { class: "presence", "aria-label": on ? "online" : "offline" })),
        h(
          "span",
          { class: "member-text" },
          h("span", { class: "member-nick" }, m.nick, me ? h("span", { class: "you", text: " (you)" }) : null),
          h("span", { class: `member-role role-${m.role}`, text: on ? m.role : `${m.role} · ${live ? "offline" : "?"}` }),
        ),
        !me && r.kind !== "direct"
          ? h("button", { type: "button", class: "icon-btn dm-btn", title: `Message ${m.nick}`, text: "Message", onclick: () => actions.openDirect(m.nick) })
          : null,
      );
    }),
  );
}

export function renderTyping() {
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

// ---------------------------------------------------------------- the log window

/** The rendered window: a contiguous run of the current room's entries. */
const view = {
  name: null,
  nodes: new Map(), // offset -> element of a rendered entry
  first: null, // offset of the first rendered entry
  last: null, // offset of the last rendered entry
  pinned: true, // following the newest entry
  atEnd: true, // the window reached the room's newest entry when last rendered
};

const box = () => $("messages");
const outboxEl = () => $("outbox");

/** Whether the window reaches the room's newest entry. */
function atEnd(r) {
  return !r.entries.length || (view.last != null && view.last >= r.entries[r.entries.length - 1].offset);
}

function nearBottom(el, px = 60) {
  return el.scrollHeight - el.scrollTop - el.clientHeight < px;
}

function scrollToBottom() {
  const el = box();
  el.scrollTop = el.scrollHeight;
}

/** Render the current room's log afresh: its newest entries, following the bottom. */
export function renderLog() {
  const r = state.rooms.get(state.current);
  const el = box();
  view.name = r ? r.name : null;
  view.nodes.clear();
  view.first = view.last = null;
  view.pinned = true;
  if (!r) {
    el.replaceChildren();
    return;
  }
  r.added = [];
  r.reset = false;
  const outbox = h("div", { id: "outbox", class: "outbox" });
  el.replaceChildren(h("div", { id: "log-start", class: "log-start", "data-testid": "log-start" }), outbox);
  const from = Math.max(0, r.entries.length - WINDOW);
  const frag = document.createDocumentFragment();
  for (let i = from; i < r.entries.length; i++) frag.append(entryNode(r, i));
  el.insertBefore(frag, outbox);
  if (r.entries.length) {
    view.first = r.entries[from].offset;
    view.last = r.entries[r.entries.length - 1].offset;
  }
  renderStart(r);
  renderOutbox(r);
  renderJump(r);
  scrollToBottom();
}

/** Render what was added to the current room since the last frame. */
function flushLog() {
  const r = state.rooms.get(state.current);
  if (!r || r.reset || view.name !== r.name || view.first == null) {
    renderLog();
    return;
  }
  const added = r.added;
  r.added = [];
  if (added.length) {
    const el = box();
    const pinned = view.pinned || nearBottom(el, 80);
    const aboveWindow = added.some((e) => e.offset < view.first);
    if (pinned && (added.length > WINDOW / 2 || aboveWindow)) {
      renderLog();
      return;
    }
    added.sort((a, b) => a.offset - b.offset);
    for (const e of added) {
      if (e.offset < view.first) continue; // older: shown when scrolled to
      if (e.offset > view.last) {
        // Newer: appended while the window reaches the end (and, scrolled back, is not full).
        if (!pinned && view.nodes.size >= MAX_RENDERED) continue;
        const i = indexOf(r, e.offset);
        if (i < 0 || (i > 0 && r.entries[i - 1].offset !== view.last)) continue;
        insertRendered(r, i);
        view.last = e.offset;
      } else {
        const i = indexOf(r, e.offset);
        if (i >= 0 && !view.nodes.has(e.offset)) insertRendered(r, i);
      }
    }
    if (pinned) {
      trimTop(r, view.nodes.size - WINDOW);
      scrollToBottom();
    }
  }
  // Entries above the window while its top is in view (or the log does not fill the box):
  // show them now, as scrolling there would.
  if (box().scrollTop < NEAR_TOP && indexOf(r, view.first) > 0) showOlder(r);
  renderStart(r);
  renderOutbox(r);
  renderJump(r);
}

/** One entry: a day separator when the day changes, then the message or the notice. */
function entryNode(r, i) {
  const e = r.entries[i];
  const prev = i > 0 ? r.entries[i - 1] : null;
  const wrap = h("div", { class: "entry", "data-offset": String(e.offset) });
  if (!prev || new Date(prev.ts).toDateString() !== new Date(e.ts).toDateString()) {
    wrap.append(h("div", { class: "day", role: "separator", text: dayLabel(e.ts) }));
  }
  if (e.type === "notice") {
    wrap.append(h("div", { class: "notice", "data-testid": "notice" }, ...e.parts.map((p) => (p instanceof Node ? p.cloneNode(true) : p))));
  } else {
    const cont = !!prev && prev.type === "msg" && prev.author === e.author && e.ts - prev.ts < GROUP_MS && !prev.deleted;
    wrap.append(messageNode(r, e, cont));
  }
  view.nodes.set(e.offset, wrap);
  return wrap;
}

/**
 * Put entry `i` into the DOM before the next rendered entry (entries after it may not be
 * rendered yet), and redo that one (its grouping and day line depend on what precedes it).
 */
function insertRendered(r, i) {
  let k = i + 1;
  let next = null;
  for (; k < r.entries.length && r.entries[k].offset <= view.last; k++) {
    next = view.nodes.get(r.entries[k].offset);
    if (next) break;
  }
  box().insertBefore(entryNode(r, i), next || outboxEl());
  if (next && k === i + 1) next.replaceWith(entryNode(r, k));
}

/** Re-render one rendered entry (an edit, a reaction, the editor opening). */
export function refreshEntry(r, offset) {
  if (r.name !== view.name) return;
  const old = view.nodes.get(offset);
  const i = indexOf(r, offset);
  if (old && i >= 0) old.replaceWith(entryNode(r, i));
}

/** The element of a rendered message, by id. */
export function messageElement(r, id) {
  const e = r.messages.get(id);
  return e && r.name === view.name ? view.nodes.get(e.offset)?.querySelector(".msg") : null;
}

/** Drop the `n` oldest rendered entries, keeping what is on screen where it is. */
function trimTop(r, n) {
  if (n <= 0) return;
  const el = box();
  const before = el.scrollHeight;
  let i = indexOf(r, view.first);
  for (; n > 0 && i >= 0 && i < r.entries.length; n--, i++) {
    const off = r.entries[i].offset;
    view.nodes.get(off)?.remove();
    view.nodes.delete(off);
  }
  view.first = i < r.entries.length ? r.entries[i].offset : null;
  el.scrollTop -= before - el.scrollHeight;
}

/** Drop the `n` newest rendered entries. */
function trimBottom(r, n) {
  let i = indexOf(r, view.last);
  for (; n > 0 && i > 0; n--, i--) {
    const off = r.entries[i].offset;
    view.nodes.get(off)?.remove();
    view.nodes.delete(off);
  }
  view.last = r.entries[i].offset;
}

/** Scrolled near the top: older entries from memory, else a page of history. */
async function showOlder(r) {
  const i = indexOf(r, view.first);
  if (i > 0) {
    const el = box();
    const height = el.scrollHeight;
    const top = el.scrollTop;
    const from = Math.max(0, i - CHUNK);
    const frag = document.createDocumentFragment();
    for (let k = from; k < i; k++) frag.append(entryNode(r, k));
    const oldFirst = view.nodes.get(view.first);
    el.insertBefore(frag, oldFirst);
    oldFirst.replaceWith(entryNode(r, i));
    view.first = r.entries[from].offset;
    if (view.nodes.size > MAX_RENDERED) trimBottom(r, view.nodes.size - MAX_RENDERED);
    el.scrollTop = top + (el.scrollHeight - height);
    renderStart(r);
    renderJump(r);
  } else if (i === 0 && r.hasMore && !r.loadingOlder) {
    renderStart(r, true);
    await actions.loadOlder(r);
    if (state.current === r.name && view.name === r.name) {
      flushLog();
      if (box().scrollTop < NEAR_TOP) showOlder(r);
      else renderStart(r);
    }
  }
}

/** Scrolled to the bottom of a window that does not reach the end: newer entries. */
function showNewer(r) {
  const i = indexOf(r, view.last);
  if (i < 0 || i + 1 >= r.entries.length) return;
  const to = Math.min(r.entries.length, i + 1 + CHUNK);
  const frag = document.createDocumentFragment();
  for (let k = i + 1; k < to; k++) frag.append(entryNode(r, k));
  box().insertBefore(frag, outboxEl());
  view.last = r.entries[to - 1].offset;
  trimTop(r, view.nodes.size - MAX_RENDERED);
  renderStart(r);
  renderJump(r);
}

/** The top of the log: the room's welcome once its very first entry is shown. */
function renderStart(r, loading = false) {
  const el = $("log-start");
  if (!el) return;
  const start = !r.hasMore && (!r.entries.length || view.first === r.entries[0].offset);
  const key = start ? "start" : loading || r.loadingOlder ? "loading" : "more";
  if (el.dataset.state === key) return;
  el.dataset.state = key;
  if (!start) {
    el.replaceChildren(h("p", { class: "muted log-more", text: key === "loading" ? "Loading older messages…" : "Scroll up for older messages" }));
    return;
  }
  el.replaceChildren(
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
  );
}

/** The "newer messages" button, shown while the newest entries are not on screen. */
function renderJump(r) {
  view.atEnd = atEnd(r);
  const btn = $("jump");
  if (!btn) return;
  btn.hidden = view.atEnd && (view.pinned || nearBottom(box(), 200));
}

/** Back to the newest messages. */
export function jumpToEnd() {
  renderLog();
}

/** Messages written but not acknowledged yet, under the log. */
export function renderOutbox(r) {
  const el = outboxEl();
  if (!el || !r || r.name !== view.name) return;
  const follow = nearBottom(box(), 80);
  el.replaceChildren(
    ...r.outbox.map((item) =>
      h(
        "div",
        { class: "msg mine pending", "data-testid": "pending-message", "data-state": item.state },
        avatar(state.nick),
        h(
          "div",
          { class: "msg-body" },
          h("div", { class: "msg-head" }, h("span", { class: "msg-author", text: state.nick }), h("span", { class: "msg-time", text: online() ? "sending…" : "waiting for the connection…" })),
          h("div", { class: "msg-text", text: item.text }),
        ),
      ),
    ),
  );
  if (follow) scrollToBottom();
}

/** Wire the log's scrolling (once). */
export function wireLog() {
  const el = box();
  el.addEventListener(
    "scroll",
    () => {
      const r = state.rooms.get(state.current);
      if (!r || view.name !== r.name) return;
      // (Entries not rendered yet are news for the next frame, not a reason to unpin.)
      view.pinned = view.atEnd && nearBottom(el, 60);
      if (el.scrollTop < NEAR_TOP) showOlder(r);
      if (!view.atEnd && nearBottom(el, 300)) showNewer(r);
      if (!r.added.length) renderJump(r);
    },
    { passive: true },
  );
}

// ---------------------------------------------------------------- one message

function messageNode(r, m, cont) {
  const mine = m.author === state.userId || (!!m.nick && m.nick === state.nick);
  const time = new Date(m.ts);
  const node = h("div", {
    class: `msg${cont ? " cont" : ""}${mine ? " mine" : ""}${m.deleted ? " deleted" : ""}`,
    "data-testid": "message",
    "data-id": String(m.id),
    "data-offset": String(m.offset),
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
    body.append(actions.editor(r, m));
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
  for (const [emoji, rx] of m.reactions) {
    const minePick = rx.users.has(state.userId);
    reactions.append(
      h(
        "button",
        {
          type: "button",
          class: `reaction${minePick ? " mine" : ""}`,
          "data-testid": "reaction",
          "data-emoji": emoji,
          title: [...rx.users.values()].join(", "),
          "aria-pressed": String(minePick),
          onclick: () => actions.react(r, m, emoji),
        },
        h("span", { class: "emoji", text: emoji }),
        h("span", { class: "n", text: String(rx.count) }),
      ),
    );
  }
  body.append(reactions);

  const acts = h("div", { class: "msg-actions" });
  if (canPost(r)) {
    for (const emoji of REACTIONS) {
      acts.append(h("button", { type: "button", class: "emoji", title: `React ${emoji}`, "aria-label": `React ${emoji}`, text: emoji, onclick: () => actions.react(r, m, emoji) }));
    }
  }
  const modAny = r.kind !== "direct" && ROLE_RANK[r.role] <= ROLE_RANK.moderator;
  if (mine || modAny) acts.append(h("span", { class: "sep" }));
  if (mine) acts.append(h("button", { type: "button", class: "txt", "data-testid": "edit", text: "Edit", onclick: () => actions.startEdit(m.id) }));
  if (mine || modAny) acts.append(h("button", { type: "button", class: "txt", text: "Delete", onclick: () => actions.remove(r, m) }));

  node.append(avatar(m.nick), h("span", { class: "msg-time-side", text: timeFmt.format(time) }), body);
  if (acts.childElementCount) node.append(acts);
  return node;
}

/** An attachment shown inline: a thumbnail that opens the full image in a new tab. */
function attachmentNode(m) {
  const link = h("a", { class: "attachment loading", target: "_blank", rel: "noopener", title: "Open the full image" });
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
    const el = box();
    if (el.scrollHeight - el.scrollTop - el.clientHeight < img.clientHeight + 120) el.scrollTop = el.scrollHeight;
  });
  img.addEventListener("error", () => {
    // Not an image (or gone): a plain file link instead.
    link.classList.remove("loading");
    link.classList.add("file");
    link.title = "Open the attachment";
    img.replaceWith(h("span", { class: "file-chip" }, h("span", { class: "file-icon", "aria-hidden": "true", text: "📎" }), "Attachment"));
  });
  actions.withTicket(() => {
    const url = actions.attachmentUrl(m.attachment);
    link.href = url;
    img.src = url;
  });
  link.append(img);
  return link;
}

