// Message text as DOM nodes: text nodes, and <a> for http(s) URLs. Nothing is ever parsed
// as markup; a link's href is the URL as the URL parser reads it, and only http: or https:.

// A URL runs to the next space or character that cannot end one in prose.
const URL_IN_TEXT = /\bhttps?:\/\/[^\s<>"'`]+/giu;
// Punctuation that usually ends the sentence rather than the URL.
const TRAILING = /[.,;:!?*'"]+$/u;

function safeHref(candidate) {
  try {
    const url = new URL(candidate);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function trimUrl(raw) {
  let url = raw.replace(TRAILING, "");
  // A closing parenthesis belongs to the URL only when the URL opened one (wiki links).
  while (url.endsWith(")") && (url.match(/\(/gu)?.length ?? 0) < (url.match(/\)/gu)?.length ?? 0)) {
    url = url.slice(0, -1).replace(TRAILING, "");
  }
  return url;
}

export function textNodes(text) {
  const nodes = [];
  let done = 0;
  for (const match of text.matchAll(URL_IN_TEXT)) {
    const url = trimUrl(match[0]);
    const href = safeHref(url);
    if (href === null) continue;
    if (match.index > done) nodes.push(document.createTextNode(text.slice(done, match.index)));
    const link = document.createElement("a");
    link.href = href;
    link.rel = "noopener noreferrer";
    link.target = "_blank";
    link.textContent = url;
    nodes.push(link);
    done = match.index + url.length;
  }
  if (done < text.length) nodes.push(document.createTextNode(text.slice(done)));
  return nodes;
}
