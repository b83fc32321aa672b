// Minimal Garou chat page: connect, join one room, show its messages, send.
//   ?gateway=http://127.0.0.1:8080   gateway HTTP origin (default: this page's origin)
//   ?room=general  ?nick=ann  ?transport=auto|webtransport|websocket
import init, { GarouClient } from "garou-wasm-client";

const params = new URLSearchParams(location.search);
const gateway = params.get("gateway") || location.origin;
const room = params.get("room") || "general";
const nick = params.get("nick") || undefined;
const transport = params.get("transport") || "auto";

const $ = (id) => document.getElementById(id);
const list = $("messages");
const input = $("message-input");
const sendButton = $("send");
const shown = new Set(); // message ids already rendered (own messages may come back twice)

function status(text) {
  $("status").textContent = text;
}

function append(li) {
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.append(li);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function showMessage(m) {
  if (shown.has(m.id)) return;
  shown.add(m.id);
  const li = document.createElement("li");
  li.dataset.testid = "message";
  li.dataset.id = String(m.id);
  const who = document.createElement("span");
  who.className = "nick";
  who.textContent = m.nick;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = m.text;
  li.append(who, text);
  append(li);
}

function showSystem(text) {
  const li = document.createElement("li");
  li.className = "system";
  li.textContent = text;
  append(li);
}

const typers = new Map(); // nick -> timeout
function showTyping(who) {
  clearTimeout(typers.get(who));
  typers.set(who, setTimeout(() => { typers.delete(who); renderTyping(); }, 3000));
  renderTyping();
}
function renderTyping() {
  const names = [...typers.keys()];
  $("typing").textContent = names.length ? `${names.join(", ")} typing…` : "";
}

async function main() {
  $("room").textContent = `#${room}`;
  status(`connecting to ${gateway}…`);
  await init();
  const client = await GarouClient.connect({ url: gateway, nick, transport });
  window.garou = { client, room }; // for the console and for tests
  client.on((ev) => {
    switch (ev.type) {
      case "message":
        if (ev.room === room) showMessage(ev);
        break;
      case "member_joined":
        if (ev.room === room) showSystem(`${ev.nick} joined`);
        break;
      case "member_left":
        if (ev.room === room) showSystem(`${ev.nick} left`);
        break;
      case "typing":
        if (ev.room === room && ev.user !== client.userId) showTyping(ev.nick);
        break;
      case "transport":
        if (ev.fallback_reason) console.info("garou: using WebSocket:", ev.fallback_reason);
        break;
      case "error":
        showSystem(`error ${ev.code}: ${ev.message}`);
        break;
      case "closed":
        status(`disconnected: ${ev.reason}`);
        input.disabled = sendButton.disabled = true;
        break;
    }
  });
  await client.join(room);
  status(`${client.nick} via ${client.transport}`);
  input.disabled = sendButton.disabled = false;
  input.focus();

  let lastTyping = 0;
  input.addEventListener("input", () => {
    const now = Date.now();
    if (now - lastTyping > 2000) {
      lastTyping = now;
      client.typing(room);
    }
  });
  $("composer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    try {
      const sent = await client.send(room, text);
      // Normally our own message arrives as a room event; show it anyway once acked.
      showMessage({ id: sent.id, nick: client.nick, text });
    } catch (err) {
      showSystem(`not sent: ${err.message}`);
      input.value = text;
    }
  });
}

main().catch((err) => {
  console.error(err);
  status(`failed: ${err.message ?? err}`);
});
