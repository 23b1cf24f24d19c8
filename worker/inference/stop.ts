/**
 * Stop strings over streamed text: emits everything that cannot be the start of a stop string,
 * holds back a tail that could be, and cuts at the earliest completed match.
 */
import type { StopMatcher } from "./generation";

export function createStopMatcher(stops: readonly string[]): StopMatcher {
  const list = stops.filter((s) => s.length > 0);
  let held = "";
  let stopped = false;
  return {
    push(text) {
      if (stopped) return { text: "", stopped: true };
      if (list.length === 0) return { text, stopped: false };
      held += text;
      let cut = -1;
      for (const s of list) {
        const i = held.indexOf(s);
        if (i >= 0 && (cut < 0 || i < cut)) cut = i;
      }
      if (cut >= 0) {
        stopped = true;
        const out = held.slice(0, cut);
        held = "";
        return { text: out, stopped: true };
      }
      // Longest suffix of `held` that is a proper prefix of some stop string stays held back.
      let keep = 0;
      for (const s of list) {
        for (let k = Math.min(s.length - 1, held.length); k > keep; k--) {
          if (held.endsWith(s.slice(0, k))) {
            keep = k;
            break;
          }
        }
      }
      const out = held.slice(0, held.length - keep);
      held = held.slice(held.length - keep);
      return { text: out, stopped: false };
    },
    flush() {
      const out = stopped ? "" : held;
      held = "";
      return out;
    },
  };
}
