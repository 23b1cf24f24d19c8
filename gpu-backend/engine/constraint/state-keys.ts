/**
 * Keys of automaton states (automaton.ts): the exact key (deduplication, forced-run cache) and the mask key,
 * which clamps counts far from any bound so states that allow the same tokens share one cached mask.
 */
import { ARR, FREE, type Frame, LIT, NUM, OBJ, PAT, ROOT, SP_NONE, type Stack, STR, VALUE } from "./frames";

/** A parser state: the configurations still alive. Never empty for a live state. */
export type State = readonly Stack[];

/** Everything that decides what the state accepts from here on, as a string (the mask cache key). */
export function stateKey(state: State): string {
  if (state.length === 1) return stackKey(state[0]!);
  return state.map(stackKey).sort().join("|");
}

/**
 * Tokens are at most this many bytes (index.ts checks the vocabulary): a count further than this from
 * every bound it is compared with cannot change which tokens fit, so mask keys clamp counts to it.
 */
export const MASK_HORIZON = 64;

/**
 * The mask cache key: stateKey with string and array counts replaced by their clamped distances to their
 * bounds. Two states with equal mask keys allow the same tokens, so huge distinct maxLengths share masks
 * instead of missing the cache on every token.
 */
export function maskKey(state: State): string {
  if (state.length === 1) return stackMaskKey(state[0]!);
  return state.map(stackMaskKey).sort().join("|");
}

function stackMaskKey(s: Stack): string {
  if (s.mk !== undefined) return s.mk;
  const own = frameMaskKey(s.f);
  return (s.mk = s.next ? `${own}/${stackMaskKey(s.next)}` : own);
}

const clampDist = (d: number) => (d === Infinity ? "i" : Math.max(0, Math.min(d, MASK_HORIZON + 1)));

function frameMaskKey(f: Frame): string {
  if (f.t === STR) return `S${f.node.id}.${clampDist(f.node.min - f.n)},${clampDist(f.node.max - f.n)}.${f.m}`;
  if (f.t === ARR && f.n >= f.node.prefix.length)
    return `A${f.node.id}.${f.st}.p${clampDist(f.node.min - f.n)},${clampDist(f.node.max - f.n)}`;
  return frameKey(f);
}

export function stackKey(s: Stack): string {
  if (s.k !== undefined) return s.k;
  const own = frameKey(s.f);
  return (s.k = s.next ? `${own}/${stackKey(s.next)}` : own);
}

function frameKey(f: Frame): string {
  switch (f.t) {
    case ROOT:
      return `R${f.done ? 1 : 0}.${f.sty}`;
    case VALUE:
      return f.sp === SP_NONE ? `V${f.node.id}` : `V${f.node.id}s${f.sp}`;
    case OBJ:
      return `O${f.node.id}.${f.st}.${f.j}`;
    case FREE:
      return `F${f.v.id}.${f.st}`;
    case ARR:
      return `A${f.node.id}.${f.st}.${f.n}`;
    case STR:
      return `S${f.node.id}.${f.n}.${f.m}`;
    case NUM:
      return `N${f.node.id}.${f.st}.${f.c}`;
    case LIT:
      return `L${f.lit.id}.${f.pos}`;
    case PAT:
      return `P${f.node.id}.${f.q}`;
  }
}
