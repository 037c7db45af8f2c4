// The polite live region: what a screen reader user should hear without moving focus —
// new messages as they arrive and rooms that got unread ones. Never history (a join
// would otherwise read out a hundred old lines).

const KEEP = 5;

export class Announcer {
  constructor(region) {
    this.region = region;
  }

  // Each announcement is a new node: live regions announce additions.
  say(text) {
    const line = document.createElement("p");
    line.textContent = text;
    this.region.append(line);
    while (this.region.children.length > KEEP) this.region.firstElementChild.remove();
  }
}
