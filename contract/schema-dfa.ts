/**
 * Operations on the DFAs of schema-regex.ts: pruning dead states, products with a counter (string lengths,
 * remainders) or with another DFA (a pattern beside a format), and the accepted length range.
 */

/** Printable ASCII that needs no escape in a JSON string. */
export const ALPHABET: readonly number[] = Array.from({ length: 95 }, (_, i) => i + 0x20).filter(
  (c) => c !== 0x22 && c !== 0x5c,
);
/** DFA states one pattern (after length and remainder products) may have. */
export const MAX_DFA_STATES = 2_000;
/** A DFA over the alphabet: trans[state * classes + classOf[byte]], -1 dead; every kept state can still accept. */
export interface Dfa {
  /** Byte -> class (255: never allowed). */
  classOf: Uint8Array;
  classes: number;
  trans: Int32Array;
  accept: Uint8Array;
  /** Representative byte per class (for products that need to know the character). */
  rep: Uint8Array;
  size: number;
}

export class RegexError extends Error {}

/** Cuts transitions into states that can never accept; the start state (0) must stay live. */
export function prune(d: Dfa): Dfa {
  const live = Uint8Array.from(d.accept);
  for (let changed = true; changed; ) {
    changed = false;
    for (let q = 0; q < d.size; q++) {
      if (live[q]) continue;
      for (let k = 0; k < d.classes; k++) {
        const to = d.trans[q * d.classes + k]!;
        if (to >= 0 && live[to]) {
          live[q] = 1;
          changed = true;
          break;
        }
      }
    }
  }
  if (!live[0]) throw new RegexError("no string the output may contain matches the pattern");
  for (let i = 0; i < d.trans.length; i++) if (d.trans[i]! >= 0 && !live[d.trans[i]!]) d.trans[i] = -1;
  return d;
}

/**
 * The product of a DFA with a counter: `next(count, byte)` -> the new count (or -1 to refuse), `ok(count)`
 * whether the count may end. Counts must stay within [0, limit).
 */
export function productDfa(
  d: Dfa,
  limit: number,
  next: (n: number, byte: number) => number,
  ok: (n: number) => boolean,
  start = 0,
): Dfa {
  const ids = new Map<number, number>();
  const pairs: Array<[number, number]> = [];
  const trans: number[] = [];
  const accept: number[] = [];
  const intern = (q: number, n: number): number => {
    const key = q * limit + n;
    let id = ids.get(key);
    if (id === undefined) {
      if (pairs.length >= MAX_DFA_STATES)
        throw new RegexError(`the value needs more than ${MAX_DFA_STATES} automaton states`);
      ids.set(key, (id = pairs.length));
      pairs.push([q, n]);
    }
    return id;
  };
  intern(0, start);
  for (let p = 0; p < pairs.length; p++) {
    const [q, n] = pairs[p]!;
    accept.push(d.accept[q] && ok(n) ? 1 : 0);
    for (let k = 0; k < d.classes; k++) {
      const to = d.trans[q * d.classes + k]!;
      const m = to < 0 ? -1 : next(n, d.rep[k]!);
      trans.push(m < 0 ? -1 : intern(to, m));
    }
  }
  return prune({ ...d, trans: Int32Array.from(trans), accept: Uint8Array.from(accept), size: pairs.length });
}

/** Strings both DFAs accept (a pattern beside a format, or beside length bounds via productDfa). */
export function intersect(a: Dfa, b: Dfa): Dfa {
  // Refine the two class partitions so each joint class is one class in both.
  const classOf = new Uint8Array(256).fill(255);
  const joint = new Map<number, number>();
  const rep: number[] = [];
  for (const c of ALPHABET) {
    if (a.classOf[c] === 255 || b.classOf[c] === 255) continue;
    const key = a.classOf[c]! * 256 + b.classOf[c]!;
    let k = joint.get(key);
    if (k === undefined) {
      joint.set(key, (k = rep.length));
      rep.push(c);
    }
    classOf[c] = k;
  }
  const refined: Dfa = {
    ...a,
    classOf,
    classes: rep.length,
    rep: Uint8Array.from(rep),
    trans: new Int32Array(a.size * rep.length),
  };
  for (let q = 0; q < a.size; q++)
    for (let k = 0; k < rep.length; k++)
      refined.trans[q * rep.length + k] = a.trans[q * a.classes + a.classOf[rep[k]!]!]!;
  return productDfa(
    refined,
    b.size,
    (n, c) => b.trans[n * b.classes + b.classOf[c]!]!,
    (n) => b.accept[n] === 1,
  );
}

/** The shortest and longest accepted lengths (Infinity when a cycle lies on an accepting path). */
export function lengthRange(d: Dfa): [number, number] {
  // Shortest: breadth-first from the start state.
  const dist = new Int32Array(d.size).fill(-1);
  dist[0] = 0;
  const queue = [0];
  let short = Infinity;
  for (let h = 0; h < queue.length; h++) {
    const q = queue[h]!;
    if (d.accept[q] && dist[q]! < short) short = dist[q]!;
    for (let k = 0; k < d.classes; k++) {
      const to = d.trans[q * d.classes + k]!;
      if (to >= 0 && dist[to] === -1) (dist[to] = dist[q]! + 1), queue.push(to);
    }
  }
  // Longest: over reachable states (all live after prune); a cycle means unbounded. Iterative DFS order.
  const order: number[] = [];
  const mark = new Uint8Array(d.size); // 0 new, 1 on the stack, 2 done
  const stack: Array<[number, number]> = [[0, 0]];
  mark[0] = 1;
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [q, k] = top;
    if (k === d.classes) {
      mark[q] = 2;
      order.push(q);
      stack.pop();
      continue;
    }
    top[1]++;
    const to = d.trans[q * d.classes + k]!;
    if (to < 0) continue;
    if (mark[to] === 1) return [short, Infinity];
    if (mark[to] === 0) (mark[to] = 1), stack.push([to, 0]);
  }
  const longest = new Float64Array(d.size).fill(-Infinity);
  for (const q of order) {
    if (d.accept[q]) longest[q] = 0;
    for (let k = 0; k < d.classes; k++) {
      const to = d.trans[q * d.classes + k]!;
      if (to >= 0 && longest[to]! + 1 > longest[q]!) longest[q] = longest[to]! + 1;
    }
  }
  return [short, longest[0]!];
}
