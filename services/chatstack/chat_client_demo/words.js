// What the user reads: plain words for error codes and close codes, and the nick/room rules
// checked before anything is sent. Codes stay available for the curious (chat.js puts them
// in a <details>), never in the sentence itself.

import {
  CLOSE_POLICY_VIOLATION,
  CLOSE_SERVICE_RESTART,
  NICK_PATTERN,
  ROOM_PATTERN,
} from "./contract.js";

const ERROR_WORDS = {
  bad_nick: "That nick can't be used.",
  bad_room: "That room name can't be used.",
  nick_taken: "Someone in that room already uses this nick. Choose another one.",
  too_many_rooms: "You are in as many rooms as one tab may join. Leave one first.",
  rate_limited: "You are sending a bit fast; your messages go out in a moment.",
  unavailable: "The chat can't store messages right now. Trying again…",
  text_too_long: "That message is too long to send. Shorten it or split it in two.",
  history: "Earlier messages of this room could not be loaded.",
  closed: "The server ended the connection.",
  join_failed: "The server did not answer the join. Try again in a moment.",
};

export function errorWords(code) {
  return ERROR_WORDS[code] ?? "Something went wrong.";
}

// Why the socket went, for the details place next to the status.
export function closeWords(code) {
  const why = {
    1000: "closed normally",
    1001: "the server is going away",
    1006: "the connection dropped",
    [CLOSE_POLICY_VIOLATION]: "refused by the server's policy",
    1011: "server error",
    [CLOSE_SERVICE_RESTART]: "the server is restarting",
    1013: "the server is busy",
  };
  return `${why[code] ?? "closed"} (code ${code})`;
}

// The rules of protocol.nick_pattern / room_pattern, in words. Both patterns are a
// `^[class]{1,max}$`: the client derives the length and tests characters one by one.
function rule(pattern, allowed) {
  const max = Number(/\{1,(\d+)\}\$$/.exec(pattern)?.[1] ?? 0);
  const oneChar = new RegExp(pattern.replace(/\{1,\d+\}\$$/, "$"), "u");
  return { pattern: new RegExp(pattern, "u"), max, oneChar, words: `1 to ${max} characters: ${allowed}` };
}

export const NICK_RULE = rule(NICK_PATTERN, "letters A–Z and a–z, digits, dot, underscore, hyphen");
export const ROOM_RULE = rule(ROOM_PATTERN, "letters A–Z and a–z, digits, underscore, hyphen");

// Null when `value` is accepted, else a sentence saying what to change.
export function nameProblem(what, value, nameRule) {
  if (value === "") return `Enter a ${what}.`;
  if (nameRule.pattern.test(value)) return null;
  const length = [...value].length;
  if (length > nameRule.max) return `A ${what} is at most ${nameRule.max} characters; this one has ${length}.`;
  const bad = [...value].find((ch) => !nameRule.oneChar.test(ch));
  const shown = bad === " " ? "a space" : `“${bad}”`;
  return `A ${what} can't contain ${shown}. Use ${nameRule.words}.`;
}
