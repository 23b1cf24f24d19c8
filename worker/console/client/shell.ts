/**
 * The frame both consoles share: a sign-in form for a secret, then a header, a section nav and one
 * section shown at a time. The section lives in the URL hash (#usage) so reloads keep it; the secret
 * never goes near the URL.
 */
import { button, field, h, replace, type Child } from "./dom";
import { notice } from "./notice";

export interface SignInOptions {
  heading: string;
  intro: string;
  /** The accessible label of the secret field, e.g. "API key". */
  label: string;
  hint: string;
  /** Resolves when the secret works; throws the API's error otherwise. */
  verify(secret: string): Promise<void>;
  /** An error to show at once (e.g. the saved secret was refused). */
  initialError?: unknown;
}

export function renderSignIn(root: HTMLElement, o: SignInOptions): void {
  const input = h("input", {
    type: "password",
    name: "secret",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
  });
  const submit = h("button", { type: "submit" }, "Sign in");
  const n = notice();
  const form = h(
    "form",
    { class: "card signin", novalidate: true },
    h("h1", {}, o.heading),
    h("p", {}, o.intro),
    field(o.label, input, o.hint),
    submit,
    n.el,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault(); // never a navigation: the secret must not reach a URL or the history
    const secret = input.value.trim();
    if (!secret) return n.error(new Error(`Enter your ${o.label}.`));
    submit.disabled = true;
    n.loading("Checking…");
    o.verify(secret).then(
      () => n.clear(),
      (err: unknown) => {
        n.error(err);
        submit.disabled = false;
        input.focus();
      },
    );
  });
  replace(root, h("main", { class: "center" }, form));
  if (o.initialError !== undefined) n.error(o.initialError);
  input.focus();
}

export interface Section {
  id: string;
  label: string;
  el: HTMLElement;
  /** Called each time the section is shown (reload its data). */
  show(): void;
}

export interface ShellOptions {
  title: string;
  who: Child;
  sections: Section[];
  onSignOut(): void;
}

/** Renders the frame; returns `select` so one section can open another (e.g. a key's requests). */
export function renderShell(root: HTMLElement, o: ShellOptions): { select(id: string): void } {
  const navButtons = new Map<string, HTMLButtonElement>();
  const main = h("main", { id: "content", tabindex: -1 });
  const select = (id: string, focus: boolean) => {
    const s = o.sections.find((x) => x.id === id) ?? o.sections[0];
    for (const [sid, b] of navButtons) b.setAttribute("aria-current", sid === s.id ? "page" : "false");
    replace(main, s.el);
    if (location.hash !== `#${s.id}`) history.replaceState(null, "", `#${s.id}`);
    s.show();
    if (focus) s.el.querySelector("h2")?.focus();
  };
  for (const s of o.sections)
    navButtons.set(
      s.id,
      button(s.label, () => select(s.id, true)),
    );
  const header = h(
    "header",
    { class: "top" },
    h("span", { class: "brand" }, o.title),
    h("span", { class: "who" }, o.who),
    button("Sign out", o.onSignOut, { class: "secondary" }),
  );
  replace(
    root,
    h("a", { class: "skip", href: "#content" }, "Skip to content"),
    header,
    h("nav", { "aria-label": "Sections" }, ...navButtons.values()),
    main,
  );
  select(location.hash.slice(1), true); // after sign-in, focus lands on the section's heading
  return { select: (id) => select(id, true) };
}

/** A section's heading, focusable so the nav can move focus to it. */
export const heading = (text: string): HTMLHeadingElement => h("h2", { tabindex: -1 }, text);
