// Keeps the message box at the newest message while the reader is there, and leaves them
// alone while they read back: then new messages show the "new messages" button instead.

const AT_BOTTOM_PX = 24;

export class ScrollFollower {
  constructor(box, marker) {
    this.box = box;
    this.marker = marker;
    this.following = true;
    this.pinnedTop = 0; // scrollTop we last put the box at
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
      if (this.stillFollowing()) this.pin();
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
    if (this.stillFollowing() || own) this.toBottom();
    else if (live) this.marker.hidden = false;
  }

  toBottom() {
    this.pin();
    this.following = true;
    this.marker.hidden = true;
  }

  pin() {
    this.box.scrollTop = this.box.scrollHeight;
    this.pinnedTop = this.box.scrollTop;
  }

  // The scroll event comes a frame late: a box moved up since we pinned it, and not just
  // clamped because it grew, has been scrolled by the reader even if the event has not
  // told us yet.
  stillFollowing() {
    if (this.box.scrollTop + 1 < this.pinnedTop && this.distance() > AT_BOTTOM_PX) {
      this.following = false;
    }
    return this.following;
  }
}
