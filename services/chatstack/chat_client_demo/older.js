// Scroll-back: when the reader reaches the top of a room, the page of history just before
// the oldest message shown is put above it (protocol.md, "History API", before=). The
// reader stays where they were: the distance from the bottom of the box is kept, and the
// scroll follower is not told (older messages are neither news nor a reason to move).

const NEAR_TOP_PX = 80;

export class OlderPages {
  // current(): the room on screen or null; fetchBefore(room, id, limit): its messages,
  // oldest first; insert(room, messages): shows them; onError(room, error).
  constructor(box, limit, { current, fetchBefore, insert, onError }) {
    this.box = box;
    this.limit = limit;
    this.current = current;
    this.fetchBefore = fetchBefore;
    this.insert = insert;
    this.onError = onError;
    box.addEventListener("scroll", () => this.check());
  }

  check() {
    if (this.box.scrollTop > NEAR_TOP_PX) return;
    const room = this.current();
    if (!room || room.olderDone || room.loadingOlder || room.ids.length === 0) return;
    this.load(room);
  }

  async load(room) {
    room.loadingOlder = true;
    room.list.setAttribute("aria-busy", "true");
    try {
      const page = await this.fetchBefore(room.name, room.ids[0], this.limit);
      if (page.length < this.limit) room.olderDone = true;
      const onScreen = this.current() === room;
      const fromBottom = this.box.scrollHeight - this.box.scrollTop;
      this.insert(room, page);
      if (onScreen) this.box.scrollTop = this.box.scrollHeight - fromBottom;
    } catch (error) {
      this.onError(room, error);
    } finally {
      room.loadingOlder = false;
      room.list.removeAttribute("aria-busy");
    }
    // Still at the top (a short page, a tall screen): the next page.
    if (!room.olderDone) this.check();
  }
}
