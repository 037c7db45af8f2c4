// Narrow screens: the rooms and people lists are panels over the chat, opened by the
// header buttons (aria-expanded), closed by the same button, Escape or choosing a room.
// From 48rem up the CSS shows both panels beside the chat and hides the buttons.

export class Panels {
  constructor(toggles) {
    this.toggles = toggles; // {name: button}, button.aria-controls names the panel
    for (const [name, button] of Object.entries(toggles)) {
      button.addEventListener("click", () => this.open(this.current() === name ? null : name));
    }
    document.addEventListener("keydown", (event) => {
      // An open dialog (over the panel) takes its own Escape.
      if (event.key === "Escape" && this.current() !== null && !document.querySelector("dialog[open]")) {
        const button = this.toggles[this.current()];
        this.open(null);
        button.focus();
      }
    });
  }

  current() {
    return document.body.dataset.panel || null;
  }

  open(name) {
    if (name === null) delete document.body.dataset.panel;
    else document.body.dataset.panel = name;
    for (const [each, button] of Object.entries(this.toggles)) {
      button.setAttribute("aria-expanded", String(each === name));
    }
    if (name !== null) {
      const panel = document.getElementById(this.toggles[name].getAttribute("aria-controls"));
      (panel.querySelector("button[aria-current='true'], button") ?? panel).focus();
    }
  }
}
