// When to try the websocket again. A few quick tries first (a dropped socket or a
// restarting gateway is usually back within a second), then exponential backoff with
// "equal jitter": a wait between half and all of the window, so a down server is not
// hammered and thousands of clients of a dead gateway do not come back at the same instant.

import {
  CLOSE_SERVICE_RESTART,
  RECONNECT_BASE_MS,
  RECONNECT_MAX_MS,
  RECONNECT_QUICK_MS,
  RECONNECT_QUICK_TRIES,
} from "./contract.js";

// attempt: reconnects already tried since the last good session (0 for the first);
// code: the close code of the socket that went; random: [0, 1), injectable for tests.
export function reconnectDelay(attempt, code, random = Math.random) {
  // Service restart: the gateway is draining and another one is ready (behind nginx).
  if (code === CLOSE_SERVICE_RESTART || attempt < RECONNECT_QUICK_TRIES) {
    return RECONNECT_QUICK_MS * (0.5 + random());
  }
  const span = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** (attempt - RECONNECT_QUICK_TRIES));
  return span * (0.5 + random() / 2);
}
