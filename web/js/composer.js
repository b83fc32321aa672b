// Writing: the composer (send, typing notices, arrow-up to edit), editing a message in
// place, reactions, deletion, and image attachments (uploaded over HTTP, then sent).

import { $, h, formatSize, showError, toast } from "./util.js";
import { state, online } from "./state.js";
import { canPost, invalidate, messageElement, refreshEntry } from "./render.js";
import { sendMessage } from "./rooms.js";

const TYPING_SEND_MS = 1000; // at most one typing datagram per second
const params = new URLSearchParams(location.search);
/**
 * Prefix of the gateway's HTTP API: the gateway the client is connected to now (it may have
 * moved to another node of a cluster), else ?gateway=, else the page's own origin.
 */
const api = () => {
  const base = (state.client?.url || params.get("gateway") || "").replace(/\/+$/, "");
  return base === location.origin ? "" : base;
};

// ---------------------------------------------------------------- attachments' URLs

/** A download URL of an upload, with this session's ticket (which changes per connection). */
export function attachmentUrl(id) {
  const ticket = state.client ? state.client.ticket : "";
  return `${api()}/api/uploads/${encodeURIComponent(id)}?ticket=${encodeURIComponent(ticket)}`;
}

// Images rendered before the session's ticket arrived (it comes with the welcome).
const ticketWaiters = [];
export function withTicket(fn) {
  if (state.client && state.client.ticket) fn();
  else ticketWaiters.push(fn);
}
export function flushTicketWaiters() {
  for (const fn of ticketWaiters.splice(0)) fn();
}

// ---------------------------------------------------------------- message actions

export function react(r, m, emoji) {
  if (!online()) return;
  const rx = m.reactions.get(emoji);
  const had = !!rx && rx.users.has(state.userId);
  state.client.react(r.name, m.id, emoji, !had).catch(showError);
}

export function remove(r, m) {
  if (!online()) return;
  state.client.delete(r.name, m.id).catch(showError);
}

export function startEdit(id) {
  const r = state.rooms.get(state.current);
  const m = r && r.messages.get(id);
  if (!m) return;
  state.editing = id;
  refreshEntry(r, m.offset);
  const ta = messageElement(r, id)?.querySelector("textarea");
  if (ta) {
    ta.focus();
    ta.setSelectionRange(ta.value.length, ta.value.length);
  }
}

/** The in-place editor of one of my messages. */
export function editor(r, m) {
  const finish = () => {
    state.editing = null;
    refreshEntry(r, m.offset);
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
      if (!text || text === m.text || !online()) return finish();
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

// ---------------------------------------------------------------- uploads

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
    const url = `${api()}/api/uploads?ticket=${encodeURIComponent(state.client.ticket)}&name=${encodeURIComponent(file.name || "image")}`;
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
  if (!r || !online()) return;
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

// ---------------------------------------------------------------- the composer

/** Keep the composer's draft per room when switching rooms. */
export function switchDraft(prevName, nextName) {
  const input = $("message-input");
  const prev = state.rooms.get(prevName);
  if (prev && prevName !== nextName) prev.draft = input.value;
  const next = nextName && state.rooms.get(nextName);
  if (prevName !== nextName || !next) {
    input.value = (next && next.draft) || "";
    input.dispatchEvent(new Event("autosize"));
  }
  if (next) requestAnimationFrame(() => !input.disabled && input.focus());
}

/** Wire the composer (once). */
export function wireComposer() {
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
    if (input.value && r && !r.pendingPeer && canPost(r) && online() && now - state.lastTyping >= TYPING_SEND_MS) {
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
      if (!r) return;
      for (let i = r.entries.length - 1; i >= 0; i--) {
        const x = r.entries[i];
        if (x.type === "msg" && x.author === state.userId && !x.deleted) {
          e.preventDefault();
          startEdit(x.id);
          break;
        }
      }
    }
  });
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || input.disabled) return;
    input.value = "";
    autosize();
    state.lastTyping = 0;
    sendMessage(text).catch((err) => {
      if (!(err && err.unsent)) showError(err);
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
  invalidate("composer");
}
