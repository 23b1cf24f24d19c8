/**
 * Stop strings over streamed text. push() returns the text that is safe to send now: everything except a
 * tail that could still be the start of a stop string. When a stop string appears (possibly across
 * chunks), the text before it is returned with `stop` set, and the stop string itself is never emitted.
 * Of several stop strings, the one that completes first wins, so the result does not depend on chunking. Work per push is linear in the chunk plus the held tail.
 */
export interface StopResult {
  /** Text to emit now. */
  text: string;
  /** The stop string that was hit (generation should end), or null. */
  stop: string | null;
}

export interface StopMatcher {
  push(chunk: string): StopResult;
  /** End of stream without a stop: release the held tail. */
  flush(): string;
}

export function createStopMatcher(stops: readonly string[]): StopMatcher {
  const list = [...new Set(stops.filter((s) => s.length > 0))];
  let held = "";
  let done = false;

  return {
    push(chunk: string): StopResult {
      if (done) return { text: "", stop: null };
      if (list.length === 0) return { text: chunk, stop: null };
      const buf = held + chunk;
      // The held tail contains no whole stop string, so any hit ends inside `chunk`: search from where one could start.
      // The stop that completes first wins (as if text arrived one character at a time); on a tie, the longer.
      let at = -1;
      let end = Infinity;
      let hit: string | null = null;
      for (const s of list) {
        const i = buf.indexOf(s, Math.max(0, held.length - s.length + 1));
        if (i >= 0 && (i + s.length < end || (i + s.length === end && i < at))) {
          at = i;
          end = i + s.length;
          hit = s;
        }
      }
      if (hit !== null) {
        done = true;
        held = "";
        return { text: buf.slice(0, at), stop: hit };
      }
      const keep = partialStopSuffix(buf, list);
      held = buf.slice(buf.length - keep);
      return { text: buf.slice(0, buf.length - keep), stop: null };
    },
    flush(): string {
      const out = done ? "" : held;
      held = "";
      return out;
    },
  };
}

/** Length of the longest suffix of `buf` that is a proper prefix of some stop string. */
function partialStopSuffix(buf: string, stops: readonly string[]): number {
  let best = 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, buf.length); k > best; k--) {
      if (buf.endsWith(s.slice(0, k))) {
        best = k;
        break;
      }
    }
  }
  return best;
}
