// A colour per nick (one of the .nick-N classes of chat.css, all readable on white),
// the same for everyone and on every load: a hash of the nick.

const COLOURS = 8;

export function nickColourClass(nick) {
  let hash = 2166136261; // FNV-1a
  for (const unit of nick) {
    hash ^= unit.codePointAt(0);
    hash = Math.imul(hash, 16777619) >>> 0;
  }
  return `nick-${hash % COLOURS}`;
}

// "(you)" after a nick, so our own lines and presence are never mistaken for another's.
export function youLabel() {
  const label = document.createElement("span");
  label.className = "you";
  label.textContent = "(you)";
  return label;
}
