// The connection state as the user sees it: words in #status (announced: changes rarely),
// a live countdown in #countdown (role timer: not announced every second), a "Retry now"
// button, and the close code and instance tucked away in #tech.

import { closeWords } from "./words.js";

const WORDS = {
  connecting: "Connecting…",
  online: "Connected",
  trying: "Reconnecting…",
  waiting: "Connection lost.",
};
const TICK_MS = 250;

export class ReconnectView {
  constructor({ status, countdown, retry, instance, closeCode }) {
    Object.assign(this, { status, countdown, retry, instance, closeCode });
    this.retryAt = null;
    this.ticker = null;
  }

  show(state, detail) {
    this.status.dataset.state = state;
    this.retryAt = state === "reconnecting" ? detail?.retryAt ?? null : null;
    if (state === "online") {
      this.instance.textContent = detail;
    } else {
      this.instance.textContent = "";
    }
    if (detail?.code !== undefined) this.closeCode.textContent = closeWords(detail.code);
    const words =
      state === "reconnecting" ? WORDS[this.retryAt === null ? "trying" : "waiting"] : WORDS[state];
    if (this.status.textContent !== words) this.status.textContent = words;
    if (this.retryAt === null) delete this.status.dataset.retryAt;
    else this.status.dataset.retryAt = String(Math.round(this.retryAt));
    this.retry.hidden = this.retryAt === null;
    clearInterval(this.ticker);
    this.ticker = this.retryAt === null ? null : setInterval(() => this.tick(), TICK_MS);
    this.tick();
  }

  tick() {
    if (this.retryAt === null) {
      this.countdown.textContent = "";
      return;
    }
    const seconds = Math.max(0, Math.ceil((this.retryAt - Date.now()) / 1000));
    this.countdown.textContent = `Trying again in ${seconds} s`;
  }
}
