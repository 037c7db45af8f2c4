// chatstack browser client: rooms, messages in id order without duplicates, missed
// messages recovered after a reconnect, unacked says resent with their client_msg_id.
// The protocol is docs/protocol.md; DOM ids are listed at the top of index.html.
//
// Every piece of user or server text reaches the page through textContent (never
// innerHTML), so markup in a message is shown as the characters it is.

import {
  ACK_CHECK_EVERY_MS,
  ACK_TIMEOUT_MS,
  CLOSE_POLICY_VIOLATION,
  ERROR_SHOW_MS,
  JOIN_TIMEOUT_MS,
  MAX_SEND_ATTEMPTS,
  MESSAGES_PATH,
  PAGE_LIMIT_DEFAULT,
  PAGE_LIMIT_MAX,
  RECOVERY_OVERLAP_MS,
  RECOVERY_RECHECK_MS,
  RETRY_PAUSE_MS,
} from "./contract.js";
import { Connection } from "./connection.js";
import { RoomLog, recover } from "./recovery.js";

const byId = (id) => document.getElementById(id);
const ui = {
  joinForm: byId("join-form"),
  nick: byId("nick"),
  room: byId("room"),
  leave: byId("leave"),
  rooms: byId("rooms"),
  roomTitle: byId("room-title"),
  messages: byId("messages"),
  outbox: byId("outbox"),
  sayForm: byId("say-form"),
  text: byId("text"),
  send: byId("send"),
  presence: byId("presence"),
  status: byId("status"),
  instance: byId("instance"),
  errors: byId("errors"),
};

// Errors that can only answer a join: they tell which room failed while one join is out.
const JOIN_ERRORS = new Set(["bad_room", "bad_nick", "too_many_rooms"]);
// Errors after which frames may be sent again unchanged (after a pause).
const RETRYABLE = new Set(["unavailable", "rate_limited"]);
const MAX_JOIN_ATTEMPTS = 3;
const MAX_ERRORS_SHOWN = 5;
const STORE_NICK = "chatstack.nick";
const STORE_ROOMS = "chatstack.rooms";

const encoder = new TextEncoder();
// Unique per page load: client_msg_ids are `<session>-<n>` (protocol.client_msg_id_pattern).
const session = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) =>
  b.toString(16).padStart(2, "0"),
).join("");
let sayCounter = 0;
// Our secret for this page load, sent with every join: the server recognises a resent say
// by it (with room, nick and client_msg_id), so nobody else can reuse our client_msg_ids
// (protocol.client_token_pattern: 16 random bytes, base64url, 22 characters).
const clientToken = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))))
  .replace(/\+/g, "-")
  .replace(/\//g, "_")
  .replace(/=+$/, "");

const state = {
  limits: null,
  rooms: new Map(), // name -> Room, in the order they were joined
  active: null, // name of the room on screen
  pending: new Map(), // client_msg_id -> say not acked yet
  joinQueue: [], // room names waiting to (re-)join, one join on the wire at a time
  joining: null, // {room, nick, timer} of the join on the wire
};

class Room {
  constructor(name, nick) {
    this.name = name;
    this.nick = nick;
    this.joined = false; // on the current socket (our own presence seen)
    this.everJoined = false;
    this.joinAttempts = 0;
    this.log = new RoomLog();
    this.ids = []; // shown message ids, sorted, parallel to this.list's children
    this.members = new Set();
    this.resumeFrom = null; // newest id shown before the socket went (null: never joined)
    this.joinCount = 0; // confirmed joins: a recovery belongs to one of them
    this.list = document.createElement("ol");
    this.list.className = "room-messages";
    this.list.dataset.room = name;
    this.list.hidden = true;
    ui.messages.append(this.list);
    this.tab = document.createElement("button");
    this.tab.type = "button";
    this.tab.dataset.room = name;
    this.tab.textContent = name;
    this.tab.addEventListener("click", () => activate(name));
    const item = document.createElement("li");
    item.append(this.tab);
    ui.rooms.append(item);
  }

  remove() {
    this.list.remove();
    this.tab.parentElement.remove();
  }
}

// -- rendering ------------------------------------------------------------------------

function showError(code, detail) {
  const item = document.createElement("li");
  item.className = "error";
  item.dataset.code = code;
  item.textContent = `${code}: ${detail}`;
  ui.errors.prepend(item);
  while (ui.errors.children.length > MAX_ERRORS_SHOWN) ui.errors.lastElementChild.remove();
  setTimeout(() => item.remove(), ERROR_SHOW_MS);
}

function messageElement(room, message) {
  const item = document.createElement("li");
  item.className = message.nick === room.nick ? "message own" : "message";
  item.dataset.id = message.id;
  const time = document.createElement("time");
  const when = new Date(message.ts);
  if (!Number.isNaN(when.getTime())) {
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString();
  }
  const nick = document.createElement("span");
  nick.className = "nick";
  nick.textContent = message.nick;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = message.text;
  item.append(time, nick, text);
  return item;
}

// Insert messages the room's log has just accepted (each id once) at their id position.
function show(room, messages) {
  if (state.rooms.get(room.name) !== room || messages.length === 0) return;
  const atBottom = ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 40;
  for (const message of messages) {
    let low = 0;
    let high = room.ids.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (room.ids[mid] < message.id) low = mid + 1;
      else high = mid;
    }
    room.ids.splice(low, 0, message.id);
    room.list.insertBefore(messageElement(room, message), room.list.children[low] ?? null);
  }
  if (room.name !== state.active) room.tab.classList.add("unread");
  else if (atBottom) ui.messages.scrollTop = ui.messages.scrollHeight;
}

function renderPresence() {
  const room = state.rooms.get(state.active);
  const items = [...(room ? room.members : [])].sort().map((nick) => {
    const item = document.createElement("li");
    item.dataset.nick = nick;
    item.textContent = nick;
    return item;
  });
  ui.presence.replaceChildren(...items);
}

function renderPending(say) {
  say.element = document.createElement("li");
  say.element.className = "pending";
  say.element.dataset.clientMsgId = say.cmid;
  say.element.dataset.room = say.room;
  say.element.textContent = say.text;
  ui.outbox.append(say.element);
}

function activate(name) {
  state.active = state.rooms.has(name) ? name : null;
  for (const room of state.rooms.values()) {
    const active = room.name === state.active;
    room.list.hidden = !active;
    room.tab.classList.toggle("active", active);
    if (active) room.tab.classList.remove("unread");
  }
  const room = state.rooms.get(state.active);
  ui.roomTitle.textContent = room ? `${room.name} as ${room.nick}` : "no room joined";
  ui.leave.disabled = !room;
  ui.send.disabled = !room;
  ui.text.disabled = !room;
  for (const say of state.pending.values()) say.element.hidden = say.room !== state.active;
  renderPresence();
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

function remember() {
  const rooms = [...state.rooms.values()].map((r) => ({ room: r.name, nick: r.nick }));
  sessionStorage.setItem(STORE_ROOMS, JSON.stringify({ rooms, active: state.active }));
}

// -- history ----------------------------------------------------------------------------

async function fetchPage(room, after, limit) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (after !== null) query.set("after", after);
  const url = `${MESSAGES_PATH.replace("{room}", encodeURIComponent(room))}?${query}`;
  const response = await fetch(url, { cache: "no-store", credentials: "same-origin" });
  if (!response.ok) throw new Error(`history answered HTTP ${response.status}`);
  const body = await response.json();
  if (!Array.isArray(body.messages)) throw new Error("history answer without messages");
  return { messages: body.messages, live: body.live === true };
}

// After a (re-)join: show what we have not shown yet, and read again until history has
// answered live twice in a row (docs/protocol.md, "Recovery"), so a message acked while we
// were away but not yet stored by history still shows up. The next join of this room
// (a new socket) ends this one and starts its own.
async function recoverRoom(room) {
  const resumeFrom = room.resumeFrom;
  const joins = room.joinCount;
  let reported = false;
  await recover(
    (after, limit) => fetchPage(room.name, after, limit),
    room.log,
    resumeFrom,
    RECOVERY_OVERLAP_MS,
    PAGE_LIMIT_MAX,
    PAGE_LIMIT_DEFAULT,
    {
      recheckMs: RECOVERY_RECHECK_MS,
      onFound: (messages) => show(room, messages),
      onError: (error) => {
        if (!reported) showError("history", `${room.name}: ${error.message}`);
        reported = true;
      },
      cancelled: () =>
        state.rooms.get(room.name) !== room || !room.joined || room.joinCount !== joins,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    },
  );
}

// -- joining ------------------------------------------------------------------------------

function queueJoin(name) {
  if (!state.joinQueue.includes(name) && state.joining?.room !== name) state.joinQueue.push(name);
  nextJoin();
}

function nextJoin() {
  if (state.joining !== null || !connection.ready) return;
  const name = state.joinQueue.shift();
  if (name === undefined) return;
  const room = state.rooms.get(name);
  if (!room) return nextJoin();
  // A nick change of a joined room misses nothing: recover from where we are. Otherwise
  // resumeFrom stays what onClosed took (the newest id before the socket went), even when
  // this join is a retry and live messages came meanwhile: see recovery.js recover().
  if (room.joined) room.resumeFrom = room.log.newest;
  room.joinAttempts += 1;
  state.joining = { room: name, nick: room.nick, timer: setTimeout(joinTimedOut, JOIN_TIMEOUT_MS) };
  connection.send({ type: "join", room: name, nick: room.nick, client_token: clientToken });
}

function clearJoining() {
  clearTimeout(state.joining?.timer);
  state.joining = null;
}

function joinDone() {
  clearJoining();
  nextJoin();
}

function joinConfirmed(room) {
  room.joined = true;
  room.joinCount += 1;
  room.everJoined = true;
  room.joinAttempts = 0;
  joinDone();
  recoverRoom(room);
  for (const say of state.pending.values()) if (say.room === room.name) trySend(say);
}

function joinFailed(name, code, detail) {
  joinDone();
  const room = state.rooms.get(name);
  if (!room) return;
  if (room.everJoined) {
    showError(code, `could not join ${name} again: ${detail}`);
    return;
  }
  // A join the user just asked for: the room never existed for us.
  state.rooms.delete(name);
  room.remove();
  failPendingOf(name);
  activate(state.active === name ? [...state.rooms.keys()][0] ?? null : state.active);
  remember();
}

function retryJoin(name) {
  const room = state.rooms.get(name);
  clearJoining();
  if (!room) return nextJoin();
  if (room.joinAttempts >= MAX_JOIN_ATTEMPTS) {
    joinFailed(name, "join_failed", "no answer from the server");
    return;
  }
  state.joinQueue.unshift(name);
  setTimeout(nextJoin, RETRY_PAUSE_MS);
}

function joinTimedOut() {
  if (state.joining !== null) retryJoin(state.joining.room);
}

function join(name, nick) {
  localStorage.setItem(STORE_NICK, nick);
  let room = state.rooms.get(name);
  if (room && room.nick === nick) {
    activate(name);
    return;
  }
  if (room) {
    room.nick = nick; // joining again with another nick changes the nick
  } else {
    room = new Room(name, nick);
    state.rooms.set(name, room);
  }
  activate(name);
  remember();
  queueJoin(name);
}

function leave() {
  const room = state.rooms.get(state.active);
  if (!room) return;
  if (room.joined) connection.send({ type: "leave", room: room.name });
  state.rooms.delete(room.name);
  state.joinQueue = state.joinQueue.filter((name) => name !== room.name);
  room.remove();
  failPendingOf(room.name);
  activate([...state.rooms.keys()][0] ?? null);
  remember();
}

// -- saying -------------------------------------------------------------------------------

function trySend(say) {
  const room = state.rooms.get(say.room);
  if (!room || !room.joined) return; // sent once the (re-)join is confirmed
  if (connection.send({ type: "say", room: say.room, text: say.text, client_msg_id: say.cmid })) {
    say.attempts += 1;
    say.sentAt = performance.now();
  }
}

function say() {
  const room = state.rooms.get(state.active);
  const text = ui.text.value;
  if (!room || text.trim() === "") return;
  const bytes = encoder.encode(text).length;
  if (state.limits && bytes > state.limits.max_text_bytes) {
    showError("text_too_long", `${bytes} bytes, the limit is ${state.limits.max_text_bytes}`);
    return;
  }
  sayCounter += 1;
  const pending = { cmid: `${session}-${sayCounter}`, room: room.name, text, attempts: 0, sentAt: 0 };
  state.pending.set(pending.cmid, pending);
  renderPending(pending);
  ui.text.value = "";
  trySend(pending);
}

function acked(cmid) {
  const pending = state.pending.get(cmid);
  if (!pending) return;
  state.pending.delete(cmid);
  pending.element.remove();
}

function failPending(pending, why) {
  state.pending.delete(pending.cmid);
  pending.element.classList.replace("pending", "failed");
  pending.element.title = why;
}

function failPendingOf(name) {
  for (const pending of [...state.pending.values()]) {
    if (pending.room === name) {
      state.pending.delete(pending.cmid);
      pending.element.remove();
    }
  }
}

// Resend every say still without an ack, with the same client_msg_id (the server stores
// and delivers it once).
function resendPending() {
  for (const pending of state.pending.values()) trySend(pending);
}

function checkAckTimeouts() {
  const now = performance.now();
  for (const pending of [...state.pending.values()]) {
    if (pending.sentAt === 0 || now - pending.sentAt < ACK_TIMEOUT_MS) continue;
    if (pending.attempts >= MAX_SEND_ATTEMPTS) failPending(pending, "not sent: no answer from the server");
    else trySend(pending);
  }
}

// -- frames from the server -----------------------------------------------------------------

function onWelcome(welcome) {
  state.limits = welcome.limits;
  ui.instance.textContent = welcome.instance;
  // A new socket: nothing is joined on it yet. Re-join every room, the one on screen first.
  const names = [...state.rooms.keys()].sort((a, b) => (b === state.active) - (a === state.active));
  for (const name of names) queueJoin(name);
}

function onClosed(code) {
  for (const room of state.rooms.values()) {
    if (room.joined) room.resumeFrom = room.log.newest;
    room.joined = false;
    room.members.clear(); // presence is only told from our (re-)join on
  }
  renderPresence();
  clearJoining(); // onWelcome queues every room again
  for (const pending of state.pending.values()) pending.sentAt = 0;
  if (code === CLOSE_POLICY_VIOLATION) showError("closed", "the server closed the connection (policy violation)");
}

function onPresence(frame) {
  const room = state.rooms.get(frame.room);
  if (!room) return;
  if (frame.event === "join") room.members.add(frame.nick);
  else if (frame.event === "leave") room.members.delete(frame.nick);
  if (
    frame.event === "join" &&
    state.joining?.room === frame.room &&
    frame.nick === state.joining.nick
  ) {
    joinConfirmed(room);
  }
  if (frame.room === state.active) renderPresence();
}

function onErrorFrame(frame) {
  const code = String(frame.code);
  showError(code, String(frame.detail ?? ""));
  if (state.joining !== null && JOIN_ERRORS.has(code)) {
    joinFailed(state.joining.room, code, String(frame.detail ?? ""));
  } else if (RETRYABLE.has(code)) {
    // Which frame was refused is not said: retry whatever is outstanding, unchanged.
    if (state.joining !== null) retryJoin(state.joining.room);
    setTimeout(resendPending, RETRY_PAUSE_MS * (1 + Math.random()));
  }
}

function onFrame(frame) {
  if (frame.type === "message") {
    const room = state.rooms.get(frame.room);
    if (room && room.log.add(frame.id)) show(room, [frame]);
  } else if (frame.type === "ack") {
    acked(frame.client_msg_id);
  } else if (frame.type === "presence") {
    onPresence(frame);
  } else if (frame.type === "error") {
    onErrorFrame(frame);
  }
}

function onState(name, detail) {
  ui.status.dataset.state = name;
  ui.status.textContent = detail && name !== "online" ? `${name} ${detail}` : name;
  if (name !== "online") ui.instance.textContent = "";
}

const connection = new Connection({ onWelcome, onFrame, onState, onClosed });

// -- start ----------------------------------------------------------------------------------

ui.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = ui.room.value.trim();
  const nick = ui.nick.value.trim();
  if (name && nick) join(name, nick);
});
ui.sayForm.addEventListener("submit", (event) => {
  event.preventDefault();
  say();
});
ui.leave.addEventListener("click", leave);
setInterval(checkAckTimeouts, ACK_CHECK_EVERY_MS);

ui.nick.value = localStorage.getItem(STORE_NICK) ?? `guest-${session.slice(0, 4)}`;
try {
  // A reload keeps this tab's rooms: they are joined again and show their history.
  const saved = JSON.parse(sessionStorage.getItem(STORE_ROOMS) ?? "null");
  for (const { room, nick } of saved?.rooms ?? []) {
    if (typeof room === "string" && typeof nick === "string" && !state.rooms.has(room)) {
      state.rooms.set(room, new Room(room, nick));
    }
  }
  activate(saved?.active ?? [...state.rooms.keys()][0] ?? null);
} catch {
  activate(null);
}
connection.start();
