/**
 * One notice area per panel: a polite status line for progress ("Loading…") and an alert for errors,
 * which screen readers announce at once. Errors show the API's own message (see api.ts errorText).
 */
import { errorText } from "./api";
import { h, replace } from "./dom";

export interface Notice {
  el: HTMLDivElement;
  loading(text?: string): void;
  info(text: string): void;
  error(err: unknown): void;
  clear(): void;
}

export function notice(busyTarget?: HTMLElement): Notice {
  const el = h("div", { class: "notice" });
  const busy = (on: boolean) => busyTarget?.setAttribute("aria-busy", String(on));
  return {
    el,
    loading(text = "Loading…") {
      busy(true);
      replace(
        el,
        h("p", { class: "status", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), text),
      );
    },
    info(text) {
      busy(false);
      replace(el, h("p", { class: "status", role: "status" }, text));
    },
    error(err) {
      busy(false);
      replace(el, h("p", { class: "error", role: "alert" }, errorText(err)));
    },
    clear() {
      busy(false);
      el.replaceChildren();
    },
  };
}

/** Runs `work` with the notice showing progress; errors land in the notice, never as an uncaught rejection. */
export async function withNotice<T>(n: Notice, work: () => Promise<T>, loadingText?: string): Promise<T | undefined> {
  n.loading(loadingText);
  try {
    const out = await work();
    n.clear();
    return out;
  } catch (err) {
    n.error(err);
    return undefined;
  }
}
