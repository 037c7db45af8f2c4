// The "+ join room" dialog: nick and room, checked against the contract's patterns before
// anything is sent, with what to change said next to the field.

import { NICK_RULE, ROOM_RULE, nameProblem } from "./words.js";

export class JoinDialog {
  constructor(ui, onJoin) {
    this.ui = ui;
    ui.nickRule.textContent = `${NICK_RULE.words}.`;
    ui.roomRule.textContent = `${ROOM_RULE.words}.`;
    ui.nick.maxLength = NICK_RULE.max;
    ui.room.maxLength = ROOM_RULE.max;
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit(onJoin);
    });
    ui.cancel.addEventListener("click", () => ui.dialog.close());
    for (const field of [ui.nick, ui.room]) {
      field.addEventListener("input", () => field.removeAttribute("aria-invalid"));
    }
  }

  prefill({ nick, room } = {}) {
    if (nick !== undefined) this.ui.nick.value = nick;
    if (room !== undefined) this.ui.room.value = room;
  }

  open(values = {}) {
    this.prefill(values);
    this.ui.problem.textContent = "";
    if (!this.ui.dialog.open) this.ui.dialog.showModal();
    this.ui.room.focus();
    this.ui.room.select();
  }

  submit(onJoin) {
    const nick = this.ui.nick.value.trim();
    const room = this.ui.room.value.trim();
    const checks = [
      [this.ui.nick, nameProblem("nick", nick, NICK_RULE)],
      [this.ui.room, nameProblem("room name", room, ROOM_RULE)],
    ];
    for (const [field, problem] of checks) {
      if (problem === null) field.removeAttribute("aria-invalid");
      else field.setAttribute("aria-invalid", "true");
    }
    const failed = checks.find(([, problem]) => problem !== null);
    if (failed) {
      this.ui.problem.textContent = failed[1];
      failed[0].focus();
      return;
    }
    this.ui.problem.textContent = "";
    this.ui.dialog.close();
    onJoin(room, nick);
  }
}
