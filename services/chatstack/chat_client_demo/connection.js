// The websocket to /ws: one socket at a time, reconnected as backoff.js says (or at once
// when asked: retryNow), frames paced under the rate the server announced in `welcome`.
//
// It knows nothing about rooms or messages: chat.js re-joins and resends on `welcome`.

import { reconnectDelay } from "./backoff.js";
import { RECONNECT_STABLE_MS, WS_PATH } from "./contract.js";

// Same origin, so the page works unchanged behind nginx (wss: under https:) and on
// `chatstack serve` (ws:), whatever the host and port.
export function websocketUrl(loc = window.location) {
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}${WS_PATH}`;
}

// A cautious copy of the server's token bucket: one token fewer and 80 % of the refill
// rate, so frames we pace are never answered `rate_limited`.
class Pacer {
  constructor(ratePerS, burst) {
    this.rate = (ratePerS * 0.8) / 1000;
    this.capacity = Math.max(1, burst - 1);
    this.tokens = this.capacity;
    this.last = performance.now();
  }

  // Milliseconds to wait before the next frame may go (0: now; takes the token).
  take() {
    const now = performance.now();
    this.tokens = Math.min(this.capacity, this.tokens + (now - this.last) * this.rate);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return (1 - this.tokens) / this.rate;
  }
}

export class Connection {
  // handlers: onWelcome(welcome), onFrame(frame), onClosed(code), onState(state, detail):
  // detail is the instance when "online", else {code, retryAt} (retryAt null: trying now).
  constructor(handlers) {
    this.handlers = handlers;
    this.socket = null;
    this.attempt = 0;
    this.openedAt = 0;
    this.queue = [];
    this.pacer = null;
    this.flushTimer = null;
    this.reconnectTimer = null;
  }

  get ready() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN && this.pacer !== null;
  }

  start() {
    this.reconnectTimer = null;
    this.handlers.onState(this.attempt === 0 ? "connecting" : "reconnecting", { retryAt: null });
    const socket = new WebSocket(websocketUrl());
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.openedAt = performance.now();
    });
    socket.addEventListener("message", (event) => this.receive(socket, event));
    socket.addEventListener("close", (event) => this.closed(socket, event.code));
    // An error is always followed by close; the close handler does the work.
  }

  receive(socket, event) {
    if (socket !== this.socket) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return; // the server only sends JSON; ignore anything else rather than crash
    }
    if (frame === null || typeof frame !== "object" || typeof frame.type !== "string") return;
    if (frame.type === "welcome") {
      this.pacer = new Pacer(Number(frame.limits.rate_per_s), Number(frame.limits.burst));
      this.handlers.onState("online", frame.instance);
      this.handlers.onWelcome(frame);
      return;
    }
    this.handlers.onFrame(frame);
  }

  closed(socket, code) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.pacer = null;
    this.queue = [];
    clearTimeout(this.flushTimer);
    this.flushTimer = null;
    // A socket that stayed up a while was a good session: start the backoff afresh.
    if (this.openedAt && performance.now() - this.openedAt >= RECONNECT_STABLE_MS) this.attempt = 0;
    this.openedAt = 0;
    const delay = reconnectDelay(this.attempt, code);
    this.attempt += 1;
    this.handlers.onClosed(code);
    this.handlers.onState("reconnecting", { code, retryAt: Date.now() + delay });
    this.reconnectTimer = setTimeout(() => this.start(), delay);
  }

  // Try now instead of when the backoff said (the user asked, the tab is visible again, the
  // network is back). False when there is nothing to hurry: connected or already trying.
  retryNow() {
    if (this.reconnectTimer === null) return false;
    clearTimeout(this.reconnectTimer);
    this.start();
    return true;
  }

  // Queue a frame for this socket. Frames queued while disconnected are dropped: the
  // caller re-sends what matters (joins, unacked says) on the next `welcome`.
  send(frame) {
    if (!this.ready) return false;
    this.queue.push(JSON.stringify(frame));
    this.flush();
    return true;
  }

  flush() {
    if (this.flushTimer !== null) return;
    while (this.queue.length > 0 && this.ready) {
      const wait = this.pacer.take();
      if (wait > 0) {
        this.flushTimer = setTimeout(() => {
          this.flushTimer = null;
          this.flush();
        }, wait);
        return;
      }
      this.socket.send(this.queue.shift());
    }
  }
}
