// Missed-message recovery (docs/protocol.md, "Exactly once -> Recovery"): the same
// algorithm as chat-probe's chatstack/probe/recovery.py.
//
// Per room the client keeps the ids it has shown and the newest one. After reconnecting
// it joins again, then reads history after the floor id of (newest id's time - overlap),
// page by page until a page is shorter than the limit, and shows only unseen ids. History
// may lag behind the broker (cut off, or draining what queued meanwhile), so the client
// reads again until two reads in a row, one recheck interval apart, answered live.

// Crockford base32 as ULIDs use it. The first 10 characters are the time in ms (48 bits:
// beyond 32-bit bitwise operators, so plain arithmetic below).
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const TIME_CHARS = 10;
const ID_LENGTH = 26;
const MAX_TIME_MS = 2 ** 48 - 1;

export function idTimeMs(id) {
  let value = 0;
  for (const char of id.slice(0, TIME_CHARS)) {
    const digit = ALPHABET.indexOf(char);
    if (digit < 0) throw new Error(`not a message id: ${id}`);
    value = value * 32 + digit;
  }
  return value;
}

export function floorId(timeMs) {
  let value = Math.min(Math.max(0, Math.floor(timeMs)), MAX_TIME_MS);
  let chars = "";
  for (let i = 0; i < TIME_CHARS; i += 1) {
    chars = ALPHABET[value % 32] + chars;
    value = Math.floor(value / 32);
  }
  return chars + "0".repeat(ID_LENGTH - TIME_CHARS);
}

export function recoveryFloor(newestId, overlapMs) {
  return floorId(idTimeMs(newestId) - overlapMs);
}

// The ids shown in one room. Ids sort as plain strings in time order.
export class RoomLog {
  constructor() {
    this.seen = new Set();
    this.newest = null;
  }

  // False when the id was shown already: the caller must not show it again.
  add(id) {
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    if (this.newest === null || id > this.newest) this.newest = id;
    return true;
  }

  // The messages not shown yet, in id order, each once; records them as shown.
  addNew(messages) {
    const sorted = [...messages].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return sorted.filter((m) => this.add(m.id));
  }
}

function checkPage(page, after, limit) {
  if (page.length > limit) throw new Error(`history page of ${page.length} exceeds limit ${limit}`);
  let previous = after;
  for (const message of page) {
    if (typeof message.id !== "string" || (previous !== null && !(message.id > previous))) {
      throw new Error(`history page out of order at ${message.id}`);
    }
    previous = message.id;
  }
}

// Every message after `after`, following pages; live only when every page was.
// fetchPage(after, limit) -> {messages, live}.
export async function fetchAfter(fetchPage, after, limit) {
  const collected = [];
  let live = true;
  for (;;) {
    const page = await fetchPage(after, limit);
    checkPage(page.messages, after, limit);
    collected.push(...page.messages);
    live = live && page.live;
    if (page.messages.length < limit) return { messages: collected, live };
    after = page.messages[page.messages.length - 1].id;
  }
}

// One read: {messages not shown yet (now recorded as shown), live}. `resumeFrom` is the
// newest id shown *before* the reconnect: live messages that arrived since must not move
// the floor forward, or a long absence would lose everything older than the overlap.
// Without it (nothing shown in the room yet) the newest page is what a page load shows.
export async function recoverOnce(fetchPage, log, resumeFrom, overlapMs, limit, newestLimit) {
  if (resumeFrom === null) {
    const page = await fetchPage(null, newestLimit);
    checkPage(page.messages, null, newestLimit);
    return { messages: log.addNew(page.messages), live: page.live };
  }
  const read = await fetchAfter(fetchPage, recoveryFloor(resumeFrom, overlapMs), limit);
  return { messages: log.addNew(read.messages), live: read.live };
}

// The pause before the next read: the recheck interval after a live answer (two live
// answers that far apart end the recovery), doubling up to 4 times it while history is
// cut off, so an outage is not met with a read per second per client.
export function nextPause(previousPause, live, recheckMs) {
  return live ? recheckMs : Math.min(Math.max(previousPause, recheckMs / 2) * 2, 4 * recheckMs);
}

// Reads until two reads in a row answered live, handing each read's new messages to
// onFound as they come. Stops early (returns false) when cancelled() says the room was
// left or its socket went: the next join starts its own recovery. A failed read counts as
// not live and is reported to onError.
export async function recover(fetchPage, log, resumeFrom, overlapMs, limit, newestLimit, how) {
  const { recheckMs, onFound, onError = () => {}, cancelled = () => false, sleep } = how;
  let liveBefore = false;
  let pause = 0;
  for (;;) {
    let live = false;
    try {
      const read = await recoverOnce(fetchPage, log, resumeFrom, overlapMs, limit, newestLimit);
      onFound(read.messages);
      live = read.live;
    } catch (error) {
      onError(error);
    }
    if (live && liveBefore) return true;
    liveBefore = live;
    pause = nextPause(pause, live, recheckMs);
    await sleep(pause);
    if (cancelled()) return false;
  }
}
