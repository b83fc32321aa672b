// Session events -> state changes (rendered at the next frame). One small handler per
// event type.

import { h, showError, toast } from "./util.js";
import { state, room, insertEntry, messageEntry, seen, changeMembers } from "./state.js";
import { invalidate, displayName, refreshEntry } from "./render.js";
import { dropRoom, loadMembers, pushNotice, delivered } from "./rooms.js";

const TYPING_SHOW_MS = 3000; // how long a typing notice stays without a new datagram

/** Callbacks app.js provides: the ticket arrived (images waiting for it). */
export const hooks = { welcome() {} };

/** The room an event is for: known, or a direct room someone opened with us. */
function roomFor(name) {
  if (state.left.has(name)) return null;
  const known = state.rooms.has(name);
  const r = room(name);
  if (!known) {
    r.joined = true;
    if (r.kind === "direct" || name.startsWith("dm:")) loadMembers(name);
    invalidate("rooms");
  }
  return r;
}

/** A known room's message by id (edits, deletes, reactions); notes the event's offset. */
function messageOf(ev) {
  const r = state.rooms.get(ev.room);
  if (!r) return [null, null];
  seen(r, ev.offset);
  return [r, r.messages.get(ev.id) || null];
}

const handlers = {
  message(ev) {
    const r = roomFor(ev.room);
    if (!r) return;
    const fresh = insertEntry(r, messageEntry(ev));
    delivered(r, ev.id);
    if (!fresh) return;
    if (r.typing.delete(ev.author)) invalidate("typing");
    if (ev.room === state.current) invalidate("log");
    else if (ev.author !== state.userId) {
      r.unread++;
      invalidate("rooms");
    }
  },
  edit(ev) {
    const [r, m] = messageOf(ev);
    if (!m) return;
    m.text = ev.text;
    m.edited = true;
    refreshEntry(r, m.offset);
  },
  delete(ev) {
    const [r, m] = messageOf(ev);
    if (!m) return;
    m.deleted = true;
    m.text = "";
    m.reactions.clear();
    refreshEntry(r, m.offset);
  },
  reaction(ev) {
    const [r, m] = messageOf(ev);
    if (!m) return;
    let rx = m.reactions.get(ev.emoji);
    if (ev.added) {
      if (!rx) m.reactions.set(ev.emoji, (rx = { count: 0, users: new Map() }));
      if (!rx.users.has(ev.user)) {
        rx.users.set(ev.user, ev.nick);
        rx.count++;
      }
    } else if (rx) {
      rx.users.delete(ev.user);
      rx.count = Math.max(0, rx.count - 1);
      if (!rx.count) m.reactions.delete(ev.emoji);
    }
    refreshEntry(r, m.offset);
  },
  member_joined(ev) {
    memberChanged(ev);
  },
  member_updated(ev) {
    memberChanged(ev);
  },
  member_moderated(ev) {
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
    if (ev.action === "kick" || ev.action === "ban") changeMembers(r, (ms) => ms.delete(ev.user));
    if (you) toast(`You ${what}`, `In ${displayName(r)}${until}${reason}.`, "info");
    pushNotice(r, ev.offset, Date.now(), [h("b", { text: you ? "You" : ev.nick }), ` ${what}${until}${reason}`]);
    invalidate("members");
  },
  room_renamed(ev) {
    const r = state.rooms.get(ev.room);
    if (!r) return;
    r.title = ev.title;
    pushNotice(r, ev.offset, Date.now(), ["Room title set to ", h("b", { text: ev.title })]);
    invalidate("room", "rooms");
  },
  room_deleted(ev) {
    const r = state.rooms.get(ev.room);
    if (r) dropRoom(ev.room, `${displayName(r)} was deleted.`);
  },
  member_left(ev) {
    const r = state.rooms.get(ev.room);
    if (!r) return;
    seen(r, ev.offset);
    if (ev.user === state.userId) return;
    changeMembers(r, (ms) => ms.delete(ev.user));
    r.typing.delete(ev.user);
    pushNotice(r, ev.offset, Date.now(), [h("b", { text: ev.nick }), " left"]);
    invalidate("members", "typing");
  },
  typing(ev) {
    if (ev.user === state.userId) return;
    const r = state.rooms.get(ev.room);
    if (!r) return;
    r.typing.set(ev.user, { nick: ev.nick, until: Date.now() + TYPING_SHOW_MS });
    if (ev.room === state.current) invalidate("typing");
    setTimeout(() => ev.room === state.current && invalidate("typing"), TYPING_SHOW_MS + 50);
  },
  presence(ev) {
    for (const r of state.rooms.values()) {
      changeMembers(r, (ms) => {
        const m = ms.get(ev.user);
        if (m) ms.set(ev.user, { ...m, online: ev.online, nick: ev.nick || m.nick });
      });
      if (!ev.online) r.typing.delete(ev.user);
    }
    invalidate("members", "typing");
  },
  transport(ev) {
    if (ev.fallback_reason) console.warn("garou: fell back to WebSocket:", ev.fallback_reason);
    invalidate("conn");
  },
  welcome(ev) {
    console.info("garou:", ev.message);
    hooks.welcome();
  },
  error(ev) {
    showError({ code: ev.code, message: `${ev.code}: ${ev.message}` });
  },
  receipt() {},
  promoted() {},
  demoted() {},
};

function memberChanged(ev) {
  const r = roomFor(ev.room);
  if (!r) return;
  const before = r.members.get(ev.user);
  changeMembers(r, (ms) => {
    const was = ms.get(ev.user);
    ms.set(ev.user, { user: ev.user, nick: ev.nick, role: ev.role, online: ev.type === "member_joined" || (was ? was.online : true) });
  });
  if (ev.user === state.userId) {
    const promoted = r.role && r.role !== ev.role && ev.type === "member_updated";
    r.role = ev.role;
    if (promoted) toast("Your role changed", `You are now ${ev.role} in ${displayName(r)}.`, "info");
  }
  const ts = Date.now();
  if (ev.type === "member_joined") {
    if (r.kind !== "direct") {
      const you = ev.user === state.userId;
      const suffix = ev.role === "guest" ? " as a guest" : "";
      if (you && ev.role === "owner") pushNotice(r, ev.offset, ts, [h("b", { text: "You" }), ` created ${r.kind === "channel" ? "this channel" : "this room"}`]);
      else pushNotice(r, ev.offset, ts, [h("b", { text: you ? "You" : ev.nick }), ` joined${suffix}`]);
    }
  } else if (before && before.nick !== ev.nick) {
    pushNotice(r, ev.offset, ts, [h("b", { text: before.nick }), " is now known as ", h("b", { text: ev.nick })]);
  } else if (before && before.role !== ev.role) {
    pushNotice(r, ev.offset, ts, [h("b", { text: ev.nick }), ` is now ${ev.role}`]);
  } else {
    seen(r, ev.offset);
  }
  invalidate("room", "rooms");
}

/** Apply one session event. */
export function onEvent(ev) {
  const fn = handlers[ev.type];
  if (fn) fn(ev);
  else console.debug("garou: unhandled event", ev);
}
