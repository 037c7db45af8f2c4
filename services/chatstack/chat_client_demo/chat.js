// chatstack browser client: rooms, messages in id order without duplicates, missed
// messages recovered after a reconnect, unacked says resent with their client_msg_id.
// The protocol is docs/protocol.md; DOM ids are listed at the top of index.html.
//
// Every piece of user or server text reaches the page through textContent or text nodes
// (never innerHTML), so markup in a message is shown as the characters it is. The parts
// of the page with one job each live in their own modules (reconnect-view, scroll,
// join-dialog, panels, announcer, days, linkify, nicks, words); docs/client.md says why.

import {
  ACK_CHECK_EVERY_MS,
  ACK_TIMEOUT_MS,
  CLIENT_TOKEN_PATTERN,
  CLOSE_POLICY_VIOLATION,
  ERROR_SHOW_MS,
  JOIN_TIMEOUT_MS,
  MAX_SEND_ATTEMPTS,
  MESSAGES_PATH,
  OWN_IDS_KEPT,
  PAGE_LIMIT_DEFAULT,
  PAGE_LIMIT_MAX,
  RECOVERY_OVERLAP_MS,
  RECOVERY_RECHECK_MS,
  RETRY_PAUSE_MS,
} from "./contract.js";
import { Announcer } from "./announcer.js";
import { Connection } from "./connection.js";
import { dayKey, renderDays } from "./days.js";
import { JoinDialog } from "./join-dialog.js";
import { textNodes } from "./linkify.js";
import { nickColourClass, youLabel } from "./nicks.js";
import { OlderPages } from "./older.js";
import { Panels } from "./panels.js";
import { ReconnectView } from "./reconnect-view.js";
import { RoomLog, floorId, recover } from "./recovery.js";
import { ScrollFollower } from "./scroll.js";
import { errorWords } from "./words.js";

const byId = (id) => document.getElementById(id);
const ui = {
  addRoom: byId("add-room"),
  leave: byId("leave"),
  rooms: byId("rooms"),
  roomTitle: byId("room-title"),
  roomYou: byId("room-you"),
  messages: byId("messages"),
  newBelow: byId("new-below"),
  outbox: byId("outbox"),
  sayForm: byId("say-form"),
  text: byId("text"),
  send: byId("send"),
  presence: byId("presence"),
  errors: byId("errors"),
};
const view = new ReconnectView({
  status: byId("status"),
  countdown: byId("countdown"),
  retry: byId("retry"),
  instance: byId("instance"),
  closeCode: byId("close-code"),
});
const follower = new ScrollFollower(ui.messages, ui.newBelow);
const announcer = new Announcer(byId("announcer"));
const panels = new Panels({ rooms: byId("toggle-rooms"), people: byId("toggle-people") });
const TITLE = document.title;
const roomsBadge = document.createElement("span");
roomsBadge.className = "badge";
roomsBadge.hidden = true;
byId("toggle-rooms").append(" ", roomsBadge);

// Errors that can only answer a join: they tell which room failed while one join is out.
const JOIN_ERRORS = new Set(["bad_room", "bad_nick", "too_many_rooms", "nick_taken"]);
// Errors after which frames may be sent again unchanged (after a pause).
const RETRYABLE = new Set(["unavailable", "rate_limited"]);
const MAX_JOIN_ATTEMPTS = 3;
const MAX_ERRORS_SHOWN = 5;
// Per tab (sessionStorage): two tabs are two people until login exists.
const STORE_NICK = "chatstack.nick";
const STORE_ROOMS = "chatstack.rooms";
const STORE_OWN = "chatstack.own";
const STORE_TOKEN = "chatstack.token";

const encoder = new TextEncoder();
// Unique per page load: client_msg_ids are `<session>-<n>` (protocol.client_msg_id_pattern).
const session = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) =>
  b.toString(16).padStart(2, "0"),
).join("");
let sayCounter = 0;
// Our secret, sent with every join: the server recognises a resent say by it (with room,
// nick and client_msg_id), so nobody else can reuse our client_msg_ids, and gives our nick
// back to it while our old connection is still counted (nick_taken for anyone else). Kept
// per tab (sessionStorage) so a reload is the same person, as the nick is
// (protocol.client_token_pattern: 16 random bytes, base64url, 22 characters).
const TOKEN_PATTERN = new RegExp(CLIENT_TOKEN_PATTERN);
const clientToken = (() => {
  const kept = sessionStorage.getItem(STORE_TOKEN);
  if (kept !== null && TOKEN_PATTERN.test(kept)) return kept;
  const made = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
  sessionStorage.setItem(STORE_TOKEN, made);
  return made;
})();

const state = {
  limits: null,
  rooms: new Map(), // name -> Room, in the order they were joined
  active: null, // name of the room on screen
  pending: new Map(), // client_msg_id -> say not acked yet
  joinQueue: [], // room names waiting to (re-)join, one join on the wire at a time
  joining: null, // {room, nick, timer} of the join on the wire
  // Ids of the messages this tab said (from their acks): "you" is what this tab sent, not
  // whoever uses the same nick.
  own: new Set(),
};
try {
  for (const id of JSON.parse(sessionStorage.getItem(STORE_OWN) ?? "[]")) state.own.add(String(id));
} catch {
  // Unreadable: lose the "(you)" marks of earlier page loads, nothing else.
}

class Room {
  constructor(name, nick, seen = null) {
    this.name = name;
    this.nick = nick;
    // Newest id read (kept over a reload): history up to it is never unread; null: what
    // history holds is not news either.
    this.seen = seen;
    this.unread = 0;
    this.joined = false; // on the current socket (our own presence seen)
    this.everJoined = false;
    this.joinAttempts = 0;
    this.log = new RoomLog();
    this.ids = []; // shown message ids, sorted
    this.items = new Map(); // message id -> its <li>
    this.members = new Set();
    this.olderDone = false; // scroll-back reached the start of the room
    this.loadingOlder = false;
    this.resumeFrom = null; // newest id shown before the socket went (null: never joined)
    this.joinCount = 0; // confirmed joins: a recovery belongs to one of them
    this.list = document.createElement("ol");
    this.list.className = "room-messages";
    this.list.dataset.room = name;
    this.list.hidden = true;
    ui.messages.append(this.list);
    follower.watch(this.list);
    this.tab = document.createElement("button");
    this.tab.type = "button";
    this.tab.dataset.room = name;
    this.tab.title = name; // the full name when the button cuts it short
    const label = document.createElement("span");
    label.className = "room-name";
    label.textContent = name;
    this.badge = document.createElement("span");
    this.badge.className = "badge";
    this.badge.hidden = true;
    this.tab.append(label, " ", this.badge); // accessible name: "<room> 3 unread"
    this.tab.addEventListener("click", () => {
      activate(name);
      panels.open(null);
      ui.text.focus();
    });
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

// The sentence for people; the code and the server's words behind "details".
function showError(code, detail, words = errorWords(code)) {
  const item = document.createElement("li");
  item.className = "error";
  item.dataset.code = code;
  const more = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "details";
  const technical = document.createElement("code");
  technical.textContent = detail ? `${code}: ${detail}` : code;
  more.append(summary, technical);
  item.append(words, more);
  ui.errors.prepend(item);
  while (ui.errors.children.length > MAX_ERRORS_SHOWN) ui.errors.lastElementChild.remove();
  setTimeout(() => item.remove(), ERROR_SHOW_MS);
}

function markOwn(item) {
  item.classList.add("own");
  if (!item.querySelector(".you")) item.querySelector(".nick").after(youLabel());
}

function messageElement(message) {
  const item = document.createElement("li");
  item.className = "message";
  item.dataset.id = message.id;
  const time = document.createElement("time");
  const when = new Date(message.ts);
  if (!Number.isNaN(when.getTime())) {
    time.dateTime = when.toISOString();
    time.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    time.title = when.toLocaleString();
    item.dataset.day = dayKey(when);
    item.dataset.ts = String(when.getTime());
  }
  const nick = document.createElement("span");
  nick.className = `nick ${nickColourClass(message.nick)}`;
  nick.textContent = message.nick;
  const text = document.createElement("span");
  text.className = "text";
  text.append(...textNodes(message.text));
  item.append(time, nick, text);
  if (state.own.has(message.id)) markOwn(item);
  return item;
}

// Insert messages the room's log has just accepted (each id once) at their id position.
// live: they came over the socket now (not from history); older: scroll-back (neither
// news nor unread, and the reader's place is kept by OlderPages).
function show(room, messages, live = false, older = false) {
  if (state.rooms.get(room.name) !== room || messages.length === 0) return;
  for (const message of messages) {
    let low = 0;
    let high = room.ids.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (room.ids[mid] < message.id) low = mid + 1;
      else high = mid;
    }
    const next = room.items.get(room.ids[low]) ?? null;
    room.ids.splice(low, 0, message.id);
    const item = messageElement(message);
    room.items.set(message.id, item);
    room.list.insertBefore(item, next);
  }
  renderDays(room.list);
  if (older) return;
  const others = messages.filter((m) => !state.own.has(m.id));
  if (room.name === state.active) {
    follower.added({ own: others.length < messages.length, live });
    if (live) for (const m of others) announcer.say(`${m.nick}: ${m.text}`);
  }
  if (onScreen(room)) {
    markSeen(room);
    return;
  }
  // Unread: what arrived live, and what history holds beyond what was read before a reload.
  const fresh = others.filter((m) => live || (room.seen !== null && m.id > room.seen));
  if (fresh.length === 0) return;
  setUnread(room, room.unread + fresh.length);
  if (live && room.name !== state.active) announcer.say(`${room.unread} unread in ${room.name}`);
}

function onScreen(room) {
  return room.name === state.active && document.visibilityState === "visible";
}

function markSeen(room) {
  const newest = room.ids[room.ids.length - 1] ?? null;
  if (newest !== null && (room.seen === null || newest > room.seen)) {
    room.seen = newest;
    remember();
  }
  setUnread(room, 0);
}

function renderBadge(badge, count) {
  badge.hidden = count === 0;
  const label = document.createElement("span");
  label.className = "visually-hidden";
  label.textContent = " unread";
  badge.replaceChildren(String(count), label);
}

function setUnread(room, count) {
  room.unread = count;
  room.tab.classList.toggle("unread", count > 0);
  renderBadge(room.badge, count);
  renderTotals();
}

// The title counts every room; the phone's "Rooms" button the rooms not on screen.
function renderTotals() {
  let total = 0;
  let elsewhere = 0;
  for (const room of state.rooms.values()) {
    total += room.unread;
    if (room.name !== state.active) elsewhere += room.unread;
  }
  document.title = total > 0 ? `(${total}) ${TITLE}` : TITLE;
  renderBadge(roomsBadge, elsewhere);
}

function renderPresence() {
  const room = state.rooms.get(state.active);
  const items = [...(room ? room.members : [])].sort().map((nick) => {
    const item = document.createElement("li");
    item.dataset.nick = nick;
    item.textContent = nick;
    if (nick === room.nick) item.append(youLabel());
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
    if (active) room.tab.setAttribute("aria-current", "true");
    else room.tab.removeAttribute("aria-current");
  }
  const room = state.rooms.get(state.active);
  ui.roomTitle.textContent = room ? room.name : "No room joined";
  ui.roomYou.textContent = room ? `you are ${room.nick}` : "";
  ui.leave.disabled = !room;
  ui.send.disabled = !room;
  ui.text.disabled = !room;
  for (const say of state.pending.values()) say.element.hidden = say.room !== state.active;
  renderPresence();
  follower.toBottom();
  if (room && onScreen(room)) markSeen(room);
  renderTotals();
  remember();
}

function remember() {
  const rooms = [...state.rooms.values()].map((r) => ({ room: r.name, nick: r.nick, seen: r.seen }));
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

// The page just before the id `before` (scroll-back), checked like a recovery page.
async function fetchOlder(room, before, limit) {
  const query = new URLSearchParams({ before, limit: String(limit) });
  const url = `${MESSAGES_PATH.replace("{room}", encodeURIComponent(room))}?${query}`;
  const response = await fetch(url, { cache: "no-store", credentials: "same-origin" });
  if (!response.ok) throw new Error(`history answered HTTP ${response.status}`);
  const body = await response.json();
  const page = body.messages;
  if (!Array.isArray(page) || page.length > limit) throw new Error("history page malformed");
  for (let i = 0; i < page.length; i += 1) {
    const id = page[i]?.id;
    if (typeof id !== "string" || !(id < before) || (i > 0 && !(id > page[i - 1].id))) {
      throw new Error(`history page out of order at ${id}`);
    }
  }
  return page;
}

// Listens to the message box's scroll events from now on.
new OlderPages(ui.messages, PAGE_LIMIT_DEFAULT, {
  current: () => state.rooms.get(state.active) ?? null,
  fetchBefore: fetchOlder,
  insert: (room, messages) => show(room, room.log.addNew(messages), false, true),
  onError: (room, error) =>
    showError("history", error.message, `Earlier messages of ${room.name} could not be loaded.`),
});

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
        if (!reported) {
          showError("history", error.message, `Earlier messages of ${room.name} could not be loaded.`);
        }
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
    showError(code, detail, `Could not join ${name} again. ${errorWords(code)}`);
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
  sessionStorage.setItem(STORE_NICK, nick);
  panels.open(null);
  let room = state.rooms.get(name);
  ui.text.disabled = false; // so focus can move there now (activate keeps it enabled)
  if (room && room.nick === nick) {
    activate(name);
    ui.text.focus();
    return;
  }
  if (room) {
    room.nick = nick; // joining again with another nick changes the nick
  } else {
    // Ids grow with time: what history held before this join is not unread, even if it
    // arrives after the user has moved to another room.
    room = new Room(name, nick, floorId(Date.now()));
    state.rooms.set(name, room);
  }
  activate(name);
  queueJoin(name);
  ui.text.focus(); // what you do after joining is type
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
  setUnread(room, 0);
  if (state.rooms.size === 0) dialog.open();
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
  follower.toBottom(); // sending while reading back: the reply belongs at the bottom
  sayCounter += 1;
  const pending = { cmid: `${session}-${sayCounter}`, room: room.name, text, attempts: 0, sentAt: 0 };
  state.pending.set(pending.cmid, pending);
  renderPending(pending);
  ui.text.value = "";
  trySend(pending);
}

function acked(cmid, id) {
  const pending = state.pending.get(cmid);
  if (!pending) return;
  state.pending.delete(cmid);
  pending.element.remove();
  if (typeof id !== "string") return;
  state.own.add(id);
  sessionStorage.setItem(STORE_OWN, JSON.stringify([...state.own].slice(-OWN_IDS_KEPT)));
  const room = state.rooms.get(pending.room);
  const item = room?.items.get(id);
  if (item) markOwn(item);
  if (room?.name === state.active) follower.toBottom();
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
  if (code === CLOSE_POLICY_VIOLATION) showError("closed", `close code ${code}`);
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

// The room's members on every gateway (docs/protocol.md, "Members"): replaces the list;
// presence events in between keep it current until the next one.
function onMembers(frame) {
  const room = state.rooms.get(frame.room);
  if (!room || !Array.isArray(frame.nicks)) return;
  room.members = new Set(frame.nicks.map(String));
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
    if (room && room.log.add(frame.id)) show(room, [frame], true);
  } else if (frame.type === "ack") {
    acked(frame.client_msg_id, frame.id);
  } else if (frame.type === "presence") {
    onPresence(frame);
  } else if (frame.type === "members") {
    onMembers(frame);
  } else if (frame.type === "error") {
    onErrorFrame(frame);
  }
}

const connection = new Connection({
  onWelcome,
  onFrame,
  onState: (name, detail) => view.show(name, detail),
  onClosed,
});
const dialog = new JoinDialog(
  {
    dialog: byId("join-dialog"),
    form: byId("join-form"),
    nick: byId("nick"),
    room: byId("room"),
    nickRule: byId("nick-rule"),
    roomRule: byId("room-rule"),
    problem: byId("join-problem"),
    cancel: byId("join-cancel"),
  },
  join,
);

// -- start ----------------------------------------------------------------------------------

ui.sayForm.addEventListener("submit", (event) => {
  event.preventDefault();
  say();
});
// Enter sends, Shift+Enter is a new line; Enter that ends an IME composition is not a send.
ui.text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.sayForm.requestSubmit();
  }
});
ui.leave.addEventListener("click", leave);
ui.addRoom.addEventListener("click", () => {
  dialog.open({ nick: state.rooms.get(state.active)?.nick });
});
byId("retry").addEventListener("click", () => connection.retryNow());
// Coming back to the tab or to the network is the moment a reconnect is most likely to
// work and most wanted: do not wait out the backoff.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible") return;
  connection.retryNow();
  const room = state.rooms.get(state.active);
  if (room) markSeen(room);
});
window.addEventListener("online", () => connection.retryNow());
setInterval(checkAckTimeouts, ACK_CHECK_EVERY_MS);

const nick = sessionStorage.getItem(STORE_NICK) ?? `guest-${session.slice(0, 4)}`;
try {
  // A reload keeps this tab's rooms: they are joined again and show their history.
  const saved = JSON.parse(sessionStorage.getItem(STORE_ROOMS) ?? "null");
  for (const { room, nick: roomNick, seen } of saved?.rooms ?? []) {
    if (typeof room === "string" && typeof roomNick === "string" && !state.rooms.has(room)) {
      state.rooms.set(room, new Room(room, roomNick, typeof seen === "string" ? seen : null));
    }
  }
  activate(saved?.active ?? [...state.rooms.keys()][0] ?? null);
} catch {
  activate(null);
}
dialog.prefill({ nick });
if (state.rooms.size === 0) dialog.open(); // a first visit: nothing to show but joining
connection.start();
