// Keeps the message box at the newest message while the reader is there, and leaves them
// alone while they read back: then new messages show the "new messages" button instead.

const AT_BOTTOM_PX = 24;

export class ScrollFollower {
  constructor(box, marker) {
    this.box = box;
    this.marker = marker;
    this.following = true;
    box.addEventListener("scroll", () => {
      this.following = this.distance() <= AT_BOTTOM_PX;
      if (this.following) marker.hidden = true;
    });
    marker.addEventListener("click", () => {
      this.toBottom();
      box.focus();
    });
    // Wrapping text, a taller message box or the outbox growing change the layout without
    // a scroll event: stay at the bottom through them.
    const keep = () => {
      if (this.following) this.box.scrollTop = this.box.scrollHeight;
    };
    this.observer = new ResizeObserver(keep);
    this.observer.observe(box);
  }

  distance() {
    return this.box.scrollHeight - this.box.scrollTop - this.box.clientHeight;
  }

  watch(list) {
    this.observer.observe(list);
  }

  // After messages were added to the list on screen. own: we sent one of them (always
  // shown); live: they are new (history being filled in is not news).
  added({ own = false, live = false } = {}) {
    if (this.following || own) this.toBottom();
    else if (live) this.marker.hidden = false;
  }

  toBottom() {
    this.box.scrollTop = this.box.scrollHeight;
    this.following = true;
    this.marker.hidden = true;
  }
}
