// Small DOM and formatting helpers shared by every module of the page.

/** `document.getElementById`. */
export const $ = (id) => document.getElementById(id);

/** Build an element: `h("div", {class, text, onclick, attr...}, ...children)`. */
export function h(tag, props = {}, ...children) {
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
export function colorFor(nick) {
  let x = 0;
  for (const ch of nick) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[x % PALETTE.length];
}

export function avatar(nick, small = false) {
  const el = h("span", { class: small ? "avatar sm" : "avatar", "aria-hidden": "true" });
  el.textContent = [...(nick || "?")][0];
  el.style.background = colorFor(nick || "?");
  return el;
}

export const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
export const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric" });

export function dayLabel(ts) {
  const d = new Date(ts);
  const today = new Date();
  const yesterday = new Date(Date.now() - 864e5);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return dayFmt.format(d);
}

export function formatSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/** "<Code>: <message>" (the wasm client's rejections) -> { code, text }. */
export function parseError(e) {
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

/** An error as a title and a sentence for people. */
export function friendly(e) {
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

export function toast(title, detail = "", kind = "error", ms = 6000) {
  const el = h(
    "div",
    { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status", "data-testid": "toast" },
    h("div", {}, h("b", { text: title }), detail ? h("span", { text: detail }) : null),
    h("button", { class: "icon-btn", "aria-label": "Dismiss", text: "×", onclick: () => el.remove() }),
  );
  $("toasts").append(el);
  setTimeout(() => el.remove(), ms);
}

export function showError(e) {
  const f = friendly(e);
  toast(f.title, f.detail);
}
