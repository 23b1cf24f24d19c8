/** A process's output lines, and a way to wait for one that matches (already printed: at once). Used by the soak's stack (local-stack.ts) and the launcher tests. */
export interface LineLog {
  lines: string[];
  /** Feeds one line (pass it as spawnUntilReady's `echo`). */
  push: (line: string) => void;
  /** The first line matching `re` at index >= `from`. */
  waitFor: (re: RegExp, from?: number) => Promise<RegExpMatchArray>;
}

export function lineLog(): LineLog {
  const lines: string[] = [];
  const waiters: Array<{ re: RegExp; from: number; resolve: (m: RegExpMatchArray) => void }> = [];
  const find = (re: RegExp, from: number) => {
    for (const line of lines.slice(from)) {
      const m = line.match(re);
      if (m) return m;
    }
    return null;
  };
  const push = (line: string) => {
    lines.push(line);
    for (const w of [...waiters]) {
      const m = lines.length - 1 >= w.from ? line.match(w.re) : null;
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  const waitFor = (re: RegExp, from = 0) =>
    new Promise<RegExpMatchArray>((resolve) => {
      const m = find(re, from);
      if (m) resolve(m);
      else waiters.push({ re, from, resolve });
    });
  return { lines, push, waitFor };
}
