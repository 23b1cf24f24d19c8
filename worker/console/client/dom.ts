/**
 * The console's only way to build DOM. Children are text nodes or elements, never HTML: model output,
 * key names and API messages can only ever be rendered as text. Event handlers are functions (`on…`
 * keys); a string value for an `on…` attribute is refused, so no markup can smuggle in a handler.
 */
export type Child = Node | string | number | null | undefined | false;
type Handler = (ev: Event) => void;
export type Attrs = Record<string, string | number | boolean | null | undefined | Handler>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === "function") {
      if (!name.startsWith("on")) throw new Error(`handler for non-event attribute ${name}`);
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name.startsWith("on") || name === "style") {
      throw new Error(`refusing string attribute ${name}`);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
}

/** Replaces every child of `el`. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

let ids = 0;
/** A fresh id for label/field pairs. */
export const uid = (prefix: string): string => `${prefix}-${++ids}`;

/** A labelled form field: <div class="field"><label for=id>label</label>control</div>. */
export function field(
  label: string,
  control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
  hint?: string,
): HTMLDivElement {
  if (!control.id) control.id = uid("f");
  const hintEl = hint ? h("small", { id: `${control.id}-hint`, class: "hint" }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintEl);
}

export function button(label: string, onclick: Handler, attrs: Attrs = {}): HTMLButtonElement {
  return h("button", { type: "button", ...attrs, onclick }, label);
}
