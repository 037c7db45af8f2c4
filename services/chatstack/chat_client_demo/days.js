// Day separators: an <li class="day"> before the first message of each local day.

export function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth() + 1}-${date.getDate()}`;
}

export function dayLabel(date, now = new Date()) {
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  if (dayKey(date) === dayKey(now)) return "Today";
  if (dayKey(date) === dayKey(yesterday)) return "Yesterday";
  const options = { weekday: "long", day: "numeric", month: "long" };
  if (date.getFullYear() !== now.getFullYear()) options.year = "numeric";
  return date.toLocaleDateString(undefined, options);
}

// Messages are inserted in id order anywhere in the list, so the separators are laid out
// again after each batch (a few hundred items at most). Each message carries data-day
// (its dayKey) and data-ts.
export function renderDays(list, now = new Date()) {
  for (const separator of list.querySelectorAll(":scope > li.day")) separator.remove();
  let previous = null;
  for (const item of [...list.children]) {
    const day = item.dataset.day;
    if (!day || day === previous) continue;
    previous = day;
    const separator = document.createElement("li");
    separator.className = "day";
    const label = document.createElement("span");
    label.textContent = dayLabel(new Date(Number(item.dataset.ts)), now);
    separator.append(label);
    item.before(separator);
  }
}
