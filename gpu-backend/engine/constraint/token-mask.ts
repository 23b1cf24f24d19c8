/**
 * Token-level masks over the automaton (automaton.ts).
 *
 * Every vocabulary token's bytes go into one byte trie. A state's mask comes from a depth-first walk of the
 * trie that steps the state's configurations byte by byte and prunes a subtree as soon as no configuration
 * survives, so tokens sharing a prefix share the work, and a token is allowed iff all its bytes are.
 * Masks are cached by state key (automaton.stateKey): inside a string or between values the same state
 * comes back token after token, and a hit costs a Map lookup plus one pass over the logits row.
 *
 * Inside a string most of the vocabulary is "plain" (no quote, backslash, control byte or partial UTF-8):
 * such a token only advances the code point count, so it is allowed iff it fits the string's maxLength.
 * Those come from precomputed bitsets by length, and only the other tokens are walked (a full walk of the
 * 56k-node trie inside a string took ~100 ms; the split walk takes well under one).
 *
 * Inside a quoted pattern or format (a DFA) a plain token only steps the DFA, whatever lies below it in the
 * stack: which plain tokens survive from DFA state q is context-independent (xgrammar's term), computed
 * once per (DFA, q) by a walk of the plain tokens' trie through the DFA alone, and shared by every state,
 * schema and request that reaches it. Only the other tokens (those with a quote, which may close the string
 * and go on in the parent) are walked with the stack.
 */
import type { Dfa } from "../../../contract/schema-dfa";
import {
  accepting,
  advance,
  initialState,
  quotedPattern,
  type Stack,
  type State,
  stepAll,
  stringRoom,
} from "./automaton";
import type { Grammar } from "../../../contract/json-schema";
import { forcedIds } from "./jump-forward";
import { maskKey, stateKey } from "./state-keys";
import type { TokenTrie, VocabIndex } from "./vocab-index";

export interface Mask {
  /** Bit i set: token i allowed. */
  bits: Int32Array;
  allowed: number;
  /** Only EOS may follow: the document is complete. */
  eosOnly: boolean;
}

/**
 * Masks and forced runs for (grammar, trie) pairs, FIFO-bounded across all grammars (a mask is 4 KB for
 * 32k tokens). Shared by every request with the same schema, so a schema's second request starts warm.
 */
const MAX_MASKS = 8192;
const masks = new Map<string, Mask>();
const MAX_RUNS = 8192;
const runs = new Map<string, readonly number[]>();
let nextCompiledId = 1;

/** A grammar bound to a vocabulary: what sequences share, including their mask cache. */
export class CompiledConstraint {
  private readonly id = nextCompiledId++;
  readonly initial: State;
  constructor(
    readonly grammar: Grammar,
    readonly vocab: VocabIndex,
  ) {
    this.initial = initialState(grammar);
  }

  private key(state: State): string {
    return `${this.id}#${maskKey(state)}`;
  }

  /** The cached mask of `state`, or undefined when it has not been computed yet. */
  cachedMask(state: State): Mask | undefined {
    return masks.get(this.key(state));
  }

  maskFor(state: State): Mask {
    const key = this.key(state);
    let m = masks.get(key);
    if (!m) {
      m = computeMask(this.vocab, state);
      if (masks.size >= MAX_MASKS) masks.delete(masks.keys().next().value!);
      masks.set(key, m);
    }
    return m;
  }

  /** The tokens the grammar forces from `state` (jump-forward.ts); [] when it leaves a choice. */
  forcedFrom(state: State): readonly number[] {
    const enc = this.vocab.encode;
    if (!enc) return [];
    // The exact state (not the mask key): a forced run can reach past the horizon mask keys clamp to.
    const key = `${this.id}#${stateKey(state)}`;
    let r = runs.get(key);
    if (!r) {
      r = forcedIds(state, this.vocab.full, enc, (id) => this.vocab.bytes(id));
      if (runs.size >= MAX_RUNS) runs.delete(runs.keys().next().value!);
      runs.set(key, r);
    }
    return r;
  }
}

/** The union over the state's configurations of the tokens each accepts, plus EOS when one is complete. */
export function computeMask(vocab: VocabIndex, state: State): Mask {
  const bits = new Int32Array(Math.ceil(vocab.size / 32));
  const scratch: Stack[][] = [];
  // Single-byte tokens first, so a mask cut short by the step budget is never empty.
  budget = Infinity;
  walk(vocab.full, 0, state as Stack[], bits, 0, scratch, 1);
  budget = MAX_MASK_STEPS;
  const generic: Stack[] = [];
  for (const s of state) {
    const room = stringRoom(s);
    const pattern = room < 0 ? quotedPattern(s) : null;
    if (room < 0 && !pattern) {
      generic.push(s);
      continue;
    }
    const plain = pattern
      ? plainThroughDfa(vocab, pattern.node.dfa, pattern.q)
      : vocab.plainUpTo[Math.min(room, vocab.maxPlain)]!;
    for (let w = 0; w < bits.length; w++) bits[w]! |= plain[w]!;
    walk(vocab.special, 0, [s], bits, 0, scratch);
  }
  if (generic.length > 0) walk(vocab.full, 0, generic, bits, 0, scratch);
  const done = state.some(accepting);
  let allowed = 0;
  for (let w = 0; w < bits.length; w++) allowed += popcount(bits[w]!);
  const eos = vocab.eos;
  if (done) bits[eos >>> 5]! |= 1 << (eos & 31);
  return { bits, allowed: allowed + (done ? 1 : 0), eosOnly: done && allowed === 0 };
}

/**
 * Plain tokens whose bytes all step DFA `dfa` from state q (context-independent: see the top of this file),
 * cached per (DFA, state) for every grammar using that DFA, FIFO-bounded like the masks. A walk of the plain
 * trie visits each node at most once with one table lookup per edge: no stack, no step budget needed.
 */
const MAX_PATTERN_BITS = 4096;
const patternBits = new Map<string, Int32Array>();
const dfaIds = new WeakMap<Dfa, number>();
let nextDfaId = 1;

function plainThroughDfa(vocab: VocabIndex, dfa: Dfa, q: number): Int32Array {
  let id = dfaIds.get(dfa);
  if (id === undefined) dfaIds.set(dfa, (id = nextDfaId++));
  const key = `${id}:${q}:${vocab.size}`;
  let bits = patternBits.get(key);
  if (bits) return bits;
  bits = new Int32Array(Math.ceil(vocab.size / 32));
  const trie = vocab.plain;
  const stack: number[] = [0, q];
  while (stack.length > 0) {
    const from = stack.pop()!;
    const node = stack.pop()!;
    for (let e = trie.edgeStart[node]!; e < trie.edgeStart[node + 1]!; e++) {
      const c = dfa.classOf[trie.edgeByte[e]!]!;
      const to = c === 255 ? -1 : dfa.trans[from * dfa.classes + c]!;
      if (to < 0) continue;
      const child = trie.edgeNode[e]!;
      for (let t = trie.tokStart[child]!; t < trie.tokStart[child + 1]!; t++) {
        const tok = trie.tokIds[t]!;
        bits[tok >>> 5]! |= 1 << (tok & 31);
      }
      stack.push(child, to);
    }
  }
  if (patternBits.size >= MAX_PATTERN_BITS) patternBits.delete(patternBits.keys().next().value!);
  patternBits.set(key, bits);
  return bits;
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/**
 * Configuration steps one mask may take. A hostile grammar (many live configurations over a wide trie)
 * would otherwise cost tens of milliseconds per token; past the budget the walk stops and the mask keeps
 * what it found (a subset of the allowed tokens, always including the single-byte ones), so the output
 * stays valid and only its choice narrows. Ordinary masks take well under a tenth of it.
 */
export const MAX_MASK_STEPS = 400_000;
let budget = MAX_MASK_STEPS;

/** Sets the bits of every token below trie node `node` that some configuration accepts. */
function walk(
  trie: TokenTrie,
  node: number,
  configs: Stack[],
  bits: Int32Array,
  depth: number,
  scratch: Stack[][],
  maxDepth = Infinity,
): void {
  const end = trie.edgeStart[node + 1]!;
  const next = (scratch[depth] ??= []);
  for (let e = trie.edgeStart[node]!; e < end; e++) {
    if ((budget -= configs.length) < 0) return;
    next.length = 0;
    const b = trie.edgeByte[e]!;
    stepAll(configs, b, next);
    if (next.length === 0) continue;
    const child = trie.edgeNode[e]!;
    for (let t = trie.tokStart[child]!; t < trie.tokStart[child + 1]!; t++) {
      const id = trie.tokIds[t]!;
      bits[id >>> 5]! |= 1 << (id & 31);
    }
    if (depth + 1 < maxDepth && trie.edgeStart[child + 1]! > trie.edgeStart[child]!)
      walk(trie, child, next, bits, depth + 1, scratch, maxDepth);
  }
}

/**
 * One sequence's logits processor: masks refused tokens to -Infinity before sampling, then follows the
 * sampled token. Extra end ids (a request's stop_token_ids) count as EOS: allowed only when complete.
 */
export class Constraint {
  private state: State;
  private mask: Mask | null = null;
  private readonly ends: number[];
  private readonly saved: number[];

  constructor(
    private readonly compiled: CompiledConstraint,
    endIds: readonly number[] = [],
  ) {
    this.state = compiled.initial;
    this.ends = endIds.filter((id) => id !== compiled.vocab.eos && id < compiled.vocab.size);
    this.saved = new Array<number>(this.ends.length);
  }

  /** The mask of the current state is known (computed here or by another request with this schema). */
  get ready(): boolean {
    this.mask ??= this.compiled.cachedMask(this.state) ?? null;
    return this.mask !== null;
  }

  /** Milliseconds the last mask computed here took (0 until one missed the cache): what the next may cost. */
  lastCost = 0;

  /** Computes the current state's mask now (the engine does this while the model runs). */
  prepare(): void {
    if (this.mask || this.ready) return;
    const t0 = performance.now();
    this.mask = this.compiled.maskFor(this.state);
    this.lastCost = performance.now() - t0;
  }

  /** The document is complete: only EOS may follow (no byte continues it and it is accepted). */
  get complete(): boolean {
    if (this.mask) return this.mask.eosOnly;
    if (!this.state.some(accepting)) return false;
    const next: Stack[] = [];
    for (let b = 0; b < 256 && next.length === 0; b++) stepAll(this.state, b, next);
    return next.length === 0;
  }

  /** Tokens the grammar forces next, minus any stop id (those wait for a complete document). */
  forced(): readonly number[] {
    const run = this.compiled.forcedFrom(this.state);
    const stop = run.findIndex((id) => this.ends.includes(id));
    return stop < 0 ? run : run.slice(0, stop);
  }

  /** The current state's mask (computed now if needed). */
  maskNow(): Mask {
    this.prepare();
    return this.mask!;
  }

  /**
   * The ids apply() leaves unmasked in a row of `limit` logits, ascending, into `out`; returns how many, or
   * -1 when the mask allows more than `out` holds (the caller masks the row instead). A draw can then visit
   * only these ids (sampler.ts sampleAmong) instead of writing -Infinity over the rest of the row.
   */
  allowedIds(out: Int32Array, limit: number, mask: Mask = this.maskNow()): number {
    const { bits, allowed } = mask;
    if (allowed + this.ends.length > out.length) return -1;
    const eos = this.compiled.vocab.eos;
    const endOk = (bits[eos >>> 5]! & (1 << (eos & 31))) !== 0;
    const V = Math.min(limit, this.compiled.vocab.size);
    let n = 0;
    for (let w = 0; w < bits.length; w++) {
      for (let m = bits[w]!; m !== 0; m &= m - 1) {
        const id = (w << 5) | (31 - Math.clz32(m & -m));
        if (id >= V) break;
        if (!this.ends.includes(id)) out[n++] = id;
      }
    }
    // Stop ids follow EOS, whatever their own bits say (as in apply): all of them when complete, else none.
    if (endOk)
      for (const id of this.ends) {
        if (id >= limit) continue;
        let at = n;
        while (at > 0 && out[at - 1]! > id) at--;
        if (at > 0 && out[at - 1] === id) continue; // listed twice in stop_token_ids
        out.copyWithin(at + 1, at, n);
        out[at] = id;
        n++;
      }
    return n;
  }

  /**
   * Sets refused tokens' logits to -Infinity (by `mask`, default the current state's); false when nothing
   * is allowed (never, for a sound grammar).
   */
  apply(row: Float32Array, mask: Mask = this.maskNow()): boolean {
    const { bits, allowed } = mask;
    const endOk = bits[this.compiled.vocab.eos >>> 5]! & (1 << (this.compiled.vocab.eos & 31));
    for (let i = 0; i < this.ends.length; i++) this.saved[i] = row[this.ends[i]!]!;
    const V = Math.min(row.length, this.compiled.vocab.size);
    for (let w = 0; w < bits.length; w++) {
      const m = bits[w]!;
      if (m === -1) continue;
      const base = w << 5;
      const top = Math.min(32, V - base);
      for (let i = 0; i < top; i++) if ((m & (1 << i)) === 0) row[base + i] = -Infinity;
    }
    for (let i = V; i < row.length; i++) row[i] = -Infinity;
    // Stop ids end the output like EOS, so they too wait for a complete document (even where their bytes fit).
    let banned = 0;
    for (let i = 0; i < this.ends.length; i++) {
      const id = this.ends[i]!;
      if (endOk) row[id] = this.saved[i]!;
      else if (row[id] !== -Infinity) {
        row[id] = -Infinity;
        banned++;
      }
    }
    return allowed - banned > 0;
  }

  /**
   * Follows a sampled or forced (hence allowed) token. The next mask is computed lazily (prepare(), or
   * apply()), so a forced run's inner states cost no mask unless their logprobs are asked for.
   */
  accept(token: number): void {
    const bytes = this.compiled.vocab.bytes(token);
    if (!bytes || !this.acceptBytes(bytes)) throw new Error(`token ${token} is not allowed by the constraint`);
  }

  /** Follows raw bytes (text after a format trigger); false, and no move, when the grammar refuses them. */
  acceptBytes(bytes: Uint8Array): boolean {
    if (bytes.length === 0) return true;
    const next = advance(this.state, bytes);
    if (!next) return false;
    this.state = next;
    this.mask = null;
    return true;
  }
}
