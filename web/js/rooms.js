// Room operations over the connection: join (with the room's recent history, or what was
// missed while away), leave, older history pages, direct conversations, and sending with
// an outbox that survives a reconnect.

import { showError, toast } from "./util.js";
import { state, online, room, insertEntry, clearEntries, messageEntry, lowerBound } from "./state.js";
import { invalidate, displayName } from "./render.js";

/** Messages per history page. */
export const PAGE = 50;
/** The largest page the server serves (catching up after a reconnect). */
const CATCH_UP_PAGE = 1000;
/** Catch-up pages before giving up and showing only the newest page. */
const CATCH_UP_PAGES = 10;

let selectHook = () => {};
/** Set what selecting a room does (app.js owns the composer's draft). */
export function onSelect(fn) {
  selectHook = fn;
}

/**
 * Join (or create) a room and fill its log: the newest page of history the first time,
 * after a reconnect what was missed since the last entry we have. Live events start at
 * the join's offset and history ends just before it, so the two meet without a hole;
 * entries are deduplicated by offset.
 */
export async function joinRoom(name, kind = null, { select = true } = {}) {
  const c = state.client;
  if (!c) throw Object.assign(new Error("Disconnected: not connected"), { code: "Disconnected" });
  // Member changes since the connection came back (or since now) replay over the join's
  // snapshot; live entries that arrive before its answer is handled are kept as well.
  const ops = state.joining.get(name) || [];
  state.joining.set(name, ops);
  const known = state.rooms.get(name);
  const resumeFrom = known && known.entries.length ? known.lastOffset : -1;
  const liveFrom = known ? known.entries.length : 0;
  let info;
  try {
    info = kind ? await c.createRoom(name, kind) : await c.join(name);
  } finally {
    state.joining.delete(name);
  }
  if (c !== state.client) return info;
  const n = info.room.name;
  state.left.delete(n);
  const r = room(n);
  r.kind = info.room.kind;
  r.title = info.room.title || r.title || "";
  r.role = info.role;
  r.joined = true;
  // The join's member list is the truth about presence now (it may have changed while away).
  // (Member events handled while the join was in flight are newer: replayed over it.)
  r.members = new Map(info.members.map((m) => [m.user, { ...m }]));
  for (const op of ops) op(r.members);
  let from = resumeFrom;
  if (r.epoch != null && r.epoch !== info.epoch) {
    // Another numbering: what we had means nothing now, but live events of this join stay.
    const live = known === r ? r.entries.slice(liveFrom).filter((e) => e.offset >= info.offset) : [];
    clearEntries(r);
    for (const e of live) insertEntry(r, e);
    from = -1;
  }
  r.epoch = info.epoch;
  if (select || !state.current) selectRoom(n);
  else invalidate("rooms");
  invalidate("members");
  await fillHistory(r, info.offset, c, from);
  settle(r, info.offset, c);
  return info;
}

/**
 * The client joined a room again after a reconnect. Resumed: the missed events arrive as
 * ordinary events. Not resumed (history trimmed, another epoch): load what is missing.
 */
export async function onRejoined(ev) {
  const r = state.rooms.get(ev.room);
  const c = state.client;
  if (!r || !c) return;
  if (ev.error) {
    dropRoom(ev.room, `${displayName(r)}: ${ev.error.message || ev.error.code}`);
    return;
  }
  r.joined = true;
  loadMembers(r.name); // presence as it is now
  if (!ev.resumed && ev.offset != null) {
    let from = r.entries.length ? r.lastOffset : -1;
    if (ev.epoch != null && r.epoch != null && ev.epoch !== r.epoch) {
      const live = r.entries.filter((e) => e.offset >= ev.offset);
      clearEntries(r);
      for (const e of live) insertEntry(r, e);
      from = -1;
    }
    if (ev.epoch != null) r.epoch = ev.epoch;
    await fillHistory(r, ev.offset, c, from);
  }
  if (ev.offset != null) settle(r, ev.offset, c);
  else setTimeout(() => loadMembers(r.name), 1500);
  invalidate("rooms", "room", "log");
}

/**
 * Ask again, a little later, for the messages just below the join's offset, and for the
 * member list: a message being stored while we joined may not be in the history we got
 * yet (it is not delivered live either, being older than the join), and presence that
 * changed while we joined may not have been announced to us. Duplicates are dropped.
 */
function settle(r, joinOffset, c) {
  for (const ms of [300, 1500]) {
    setTimeout(async () => {
      if (c !== state.client || state.rooms.get(r.name) !== r) return;
      const below = r.entries[lowerBound(r.entries, joinOffset) - 1];
      try {
        const page = await c.history(r.name, { after: below ? below.offset : undefined, before: joinOffset, limit: below ? CATCH_UP_PAGE : PAGE });
        if (page.epoch !== r.epoch) return;
        let fresh = false;
        for (const m of page.messages) fresh = insertEntry(r, messageEntry(m)) || fresh;
        if (fresh && r.name === state.current) invalidate("log");
      } catch (e) {
        console.warn("history failed:", r.name, String(e && e.message));
      }
      if (ms > 1000) loadMembers(r.name);
    }, ms);
  }
}

/** Load the history a freshly joined room needs (see `joinRoom`). */
async function fillHistory(r, joinOffset, c, resumeFrom) {
  try {
    if (r.entries.length && resumeFrom >= 0) {
      let after = resumeFrom;
      for (let pages = 0; after < joinOffset - 1; pages++) {
        if (pages === CATCH_UP_PAGES) {
          // Too much was missed: start again from the newest page.
          clearEntries(r);
          break;
        }
        const page = await c.history(r.name, { after, before: joinOffset, limit: CATCH_UP_PAGE });
        if (page.epoch !== r.epoch) {
          clearEntries(r);
          r.epoch = page.epoch;
          break;
        }
        for (const m of page.messages) insertEntry(r, messageEntry(m));
        if (page.messages.length < CATCH_UP_PAGE) break;
        after = page.messages[page.messages.length - 1].offset;
      }
      if (r.entries.length) {
        invalidate("log");
        return;
      }
    }
    const page = await c.history(r.name, { before: joinOffset, limit: PAGE });
    r.epoch = page.epoch;
    for (const m of page.messages) insertEntry(r, messageEntry(m));
    r.hasMore = page.messages.length >= PAGE;
    invalidate("log");
  } catch (e) {
    console.warn("history failed:", r.name, String(e && e.message));
  }
}

/** A page of older history before the oldest entry we have. */
export async function loadOlder(r) {
  const c = state.client;
  if (!c || r.loadingOlder || !r.hasMore) return;
  r.loadingOlder = true;
  try {
    const first = r.entries.length ? r.entries[0].offset : r.lastOffset + 1;
    const page = await c.history(r.name, { before: first, limit: PAGE });
    if (page.epoch !== r.epoch) return;
    for (const m of page.messages) insertEntry(r, messageEntry(m));
    r.hasMore = page.messages.length >= PAGE;
    // Older entries are no news: they are not "added" to the window, which fetches them.
    r.added = r.added.filter((e) => e.offset > first);
  } catch (e) {
    console.warn("older history failed:", r.name, String(e && e.message));
  } finally {
    r.loadingOlder = false;
  }
}

/** Show a room (or none). */
export function selectRoom(name) {
  selectHook(name);
  state.current = name;
  state.editing = null;
  const r = name && state.rooms.get(name);
  if (r) {
    r.unread = 0;
    r.reset = true;
  }
  invalidate("rooms", "room");
}

/** Forget a room we were removed from (kick, ban, deletion) and tell the user why. */
export function dropRoom(name, why) {
  state.rooms.delete(name);
  state.left.add(name);
  toast("Room closed", why, "info");
  if (state.current === name) selectRoom([...state.rooms.keys()][0] || null);
  else invalidate("rooms");
}

export async function leaveRoom(name) {
  const r = state.rooms.get(name);
  if (!r) return;
  if (!r.pendingPeer) await state.client.leave(name);
  state.rooms.delete(name);
  state.left.add(name);
  if (state.current === name) selectRoom([...state.rooms.keys()][0] || null);
  else invalidate("rooms");
  refreshBrowse();
}

export async function refreshBrowse() {
  if (!online()) return;
  try {
    state.browse = await state.client.listRooms();
  } catch (e) {
    console.warn("listRooms failed:", String(e && e.message));
  }
  invalidate("rooms");
}

export function openDirect(nick) {
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

export async function loadMembers(name) {
  try {
    const list = await state.client.listUsers(name);
    const r = state.rooms.get(name);
    if (!r) return;
    for (const m of list) r.members.set(m.user, { ...m });
    const me = r.members.get(state.userId);
    if (me) r.role = me.role;
    invalidate("rooms", "room");
  } catch (e) {
    console.warn("listUsers failed:", name, String(e && e.message));
  }
}

// ---------------------------------------------------------------- sending

let outboxSeq = 0;

/**
 * Send `text` to the current room. It shows at once as pending under the log and is
 * replaced by the real message when the server's copy arrives. Written while
 * reconnecting, the client keeps it and sends it (once) when connected again.
 */
export async function sendMessage(text) {
  const r = state.rooms.get(state.current);
  if (!r || !state.client) return;
  if (r.pendingPeer) {
    if (!online()) throw Object.assign(new Error("Disconnected: not connected"), { code: "Disconnected" });
    const sent = await state.client.direct(r.pendingPeer, text);
    state.rooms.delete(r.name);
    const real = room(sent.room);
    real.kind = "direct";
    real.role = real.role || "member";
    real.joined = true;
    if (real.members.size < 2) loadMembers(real.name);
    selectRoom(sent.room);
    return;
  }
  const item = { key: ++outboxSeq, text, state: "sending" };
  r.outbox.push(item);
  invalidate("log");
  try {
    const sent = await state.client.send(r.name, text);
    // The message event (same offset) may already be here, or follows: drop the stand-in then.
    item.id = sent.id;
    if (r.messages.has(sent.id)) removeItem(r, item);
    else item.state = "acked";
  } catch (e) {
    removeItem(r, item);
    showError(e);
    if (e) e.unsent = text;
    throw e;
  }
}

function removeItem(r, item) {
  const i = r.outbox.indexOf(item);
  if (i >= 0) r.outbox.splice(i, 1);
  invalidate("log");
}

/** A message arrived: its stand-in in the outbox (matched by id once acked) goes. */
export function delivered(r, id) {
  const item = r.outbox.find((x) => x.id === id);
  if (item) removeItem(r, item);
}

/** A notice line in a room's log (joins, leaves, renames) at the event's offset. */
export function pushNotice(r, offset, ts, parts) {
  if (insertEntry(r, { type: "notice", offset, ts, parts }) && r.name === state.current) invalidate("log");
}

