/**
 * Ids (keys, requests) shown short with a copy button: `req_3f9a…c2d1`. The full id stays in the DOM for
 * screen readers (visually hidden), in `title` and `data-id`, and is what the button copies.
 */
import { button, h } from "./dom";

/** `req_3f9a0b…c2d1`: the prefix, six characters, an ellipsis, the last four. Short ids stay whole. */
export function shortId(id: string): string {
  const cut = id.indexOf("_") + 1;
  return id.length <= cut + 12 ? id : `${id.slice(0, cut + 6)}…${id.slice(-4)}`;
}

export function idChip(id: string): HTMLSpanElement {
  const note = h("span", { class: "copied", role: "status" });
  const copy = button(
    "Copy",
    () => {
      navigator.clipboard?.writeText(id).then(
        () => (note.textContent = "Copied"),
        () => (note.textContent = "Select to copy"),
      );
    },
    { class: "copy", "aria-label": `Copy ${id}` },
  );
  return h(
    "span",
    { class: "id", "data-id": id },
    h("code", { title: id, "aria-hidden": "true" }, shortId(id)),
    h("span", { class: "visually-hidden" }, id),
    copy,
    note,
  );
}
