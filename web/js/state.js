// What the page knows: the session, the rooms and each room's entries (messages and
// notices) kept sorted by offset, without duplicates. Rendering reads it; events,
// history pages and the connection write it.

/** Entries kept in memory per room; older ones are dropped and come back from history. */
export const MAX_KEEP = 10_000;

export const state = {
  client: null, // the live GarouClient, or null while (re)connecting
  nick: "",
  userId: 0,
  transport: "",
  fallbackReason: "",
  /** "idle" | "connecting" | "up" | "reconnecting" | "down" */
  status: "idle",
  statusDetail: "",
  rooms: new Map(), // name -> Room
  left: new Set(), // rooms we left: late events for them are ignored
  current: null, // room name
  browse: [], // listRooms()
  editing: null, // message id being edited in the current room
  lastTyping: 0,
  joining: new Map(), // room name -> member changes made while its join is in flight
};

/** Whether commands can be sent now. */
export const online = () => state.status === "up" && !!state.client;

export function newRoom(name, kind = name.startsWith("dm:") ? "direct" : "group") {
  return {
    name,
    kind,
    title: "",
    role: null,
    members: new Map(), // user id -> { user, nick, role, online }
    entries: [], // sorted by offset: messages ({type: "msg"}) and notices ({type: "notice"})
    messages: new Map(), // message id -> its entry
    epoch: null, // the room's numbering (offsets compare only within one epoch)
    lastOffset: -1, // the highest room-event offset seen (catch-up starts after it)
    hasMore: true, // older history may exist on the server
    loadingOlder: false,
    joined: false, // joined on the current connection
    added: [], // entries inserted since the last render
    reset: false, // entries replaced: render the room afresh
    unread: 0,
    typing: new Map(), // user id -> { nick, until }
    pendingPeer: null, // a direct conversation not opened yet: the peer's nick
    draft: "", // the composer's text while another room is shown
    outbox: [], // messages typed while offline or not yet acked: { key, text, ts, state }
  };
}

/** The room named `name`, created empty if unknown. */
export function room(name) {
  let r = state.rooms.get(name);
  if (!r) {
    r = newRoom(name);
    state.rooms.set(name, r);
  }
  return r;
}

/** Index of the first entry whose offset is >= `offset` (binary search). */
export function lowerBound(entries, offset) {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (entries[mid].offset < offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the entry at exactly `offset`, or -1. */
export function indexOf(r, offset) {
  const i = lowerBound(r.entries, offset);
  return i < r.entries.length && r.entries[i].offset === offset ? i : -1;
}

/** Note a room event's offset (live or from history). */
export function seen(r, offset) {
  if (typeof offset === "number" && offset > r.lastOffset) r.lastOffset = offset;
}

/**
 * Insert an entry in offset order. Returns false (and changes nothing) when the offset or
 * the message id is already there: history pages and live events overlap freely.
 */
export function insertEntry(r, entry) {
  if (entry.type === "msg" && r.messages.has(entry.id)) return false;
  const list = r.entries;
  const last = list.length ? list[list.length - 1].offset : -Infinity;
  if (entry.offset > last) {
    list.push(entry);
  } else {
    const i = lowerBound(list, entry.offset);
    if (i < list.length && list[i].offset === entry.offset) return false;
    list.splice(i, 0, entry);
  }
  if (entry.type === "msg") r.messages.set(entry.id, entry);
  seen(r, entry.offset);
  r.added.push(entry);
  if (list.length > MAX_KEEP) {
    for (const gone of list.splice(0, list.length - MAX_KEEP)) {
      if (gone.type === "msg") r.messages.delete(gone.id);
    }
    r.hasMore = true;
    r.reset = true;
  }
  return true;
}

/** Forget every entry (a new epoch: offsets of the old one mean nothing now). */
export function clearEntries(r) {
  r.entries = [];
  r.messages.clear();
  r.lastOffset = -1;
  r.hasMore = true;
  r.added = [];
  r.reset = true;
}

/** A message entry from a live `message` event or a stored history message. */
export function messageEntry(m) {
  const reactions = new Map(); // emoji -> { count, users: Map(user -> nick) }
  for (const x of m.reactions || []) reactions.set(x.emoji, { count: x.count, users: new Map() });
  return {
    type: "msg",
    offset: m.offset,
    id: m.id,
    author: m.author,
    nick: m.nick,
    ts: m.ts,
    text: m.deleted ? "" : m.text,
    attachment: m.attachment || null,
    edited: !!m.edited,
    deleted: !!m.deleted,
    reactions,
  };
}

/**
 * Change a room's members now, and again over the member list of a join in flight (its
 * snapshot is older than events that arrive before the join's answer is handled).
 */
export function changeMembers(r, op) {
  op(r.members);
  state.joining.get(r.name)?.push(op);
}
