/**
 * Jump-forward (SGLang's compressed FSM): where the grammar admits exactly one next byte, step after
 * step (a key, `":`, a closing brace, the rest of an enum value), the engine appends the tokens of that
 * forced text without sampling them and feeds them through the model as one chunk.
 *
 * Token ids: the forced text starts where the last sampled token ended (a token boundary by construction)
 * and is encoded by the vocabulary's own encoder (SentencePiece for Mistral v1), the ids checked to spell
 * exactly the forced bytes. Tokens already streamed are never retokenized, so where SentencePiece would
 * have merged the last sampled token with the forced text (`{` + `"` -> `{"`) the model's own choice of
 * `{` stands and the forced text is encoded on its own. At the far end the run stops before any token
 * that a longer token allowed by the grammar could straddle (`":` when `":"` may follow): the model
 * samples that token itself, so the jump never takes a merge away from it.
 */
import { accepting, advance, step, type Stack, type State } from "./automaton";

/** The vocabulary's byte trie (token-mask.ts TokenTrie), as far as this module reads it. */
export interface TrieView {
  readonly edgeStart: Int32Array;
  readonly edgeByte: Uint8Array;
  readonly edgeNode: Int32Array;
  readonly tokStart: Int32Array;
  readonly tokIds: Int32Array;
}

/** Forced text is followed at most this far (a long const string is jumped in pieces). */
export const MAX_FORCED_BYTES = 256;

/** The bytes every configuration of `state` must take next, up to a choice, the end, or the cap. */
export function forcedBytes(state: State): Uint8Array {
  const out: number[] = [];
  let cur: State = state;
  const next: Stack[] = [];
  while (out.length < MAX_FORCED_BYTES && !cur.some(accepting)) {
    let only = -1;
    for (let b = 0; b < 256; b++) {
      next.length = 0;
      for (const s of cur) step(s, b, next);
      if (next.length === 0) continue;
      if (only >= 0) return Uint8Array.from(out);
      only = b;
    }
    if (only < 0) break;
    out.push(only);
    cur = advance(cur, Uint8Array.of(only))!;
  }
  return Uint8Array.from(out);
}

/** Length of the longest prefix of `b` that ends on a whole UTF-8 character. */
export function wholeCharsPrefix(b: Uint8Array): number {
  let i = b.length;
  // Back over at most 3 continuation bytes to the last lead byte; keep it only if its character is whole.
  let k = i - 1;
  while (k >= 0 && i - k <= 4 && (b[k]! & 0xc0) === 0x80) k--;
  if (k < 0) return 0;
  const lead = b[k]!;
  const need = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  if (i - k < need) i = k;
  return i;
}

/**
 * Does a vocabulary token start with `prefix` and continue past it with bytes `after` accepts?
 * (Such a token straddles the end of the forced text.)
 */
export function straddled(trie: TrieView, prefix: Uint8Array, after: State): boolean {
  let node = 0;
  for (const b of prefix) {
    let child = -1;
    for (let e = trie.edgeStart[node]!; e < trie.edgeStart[node + 1]!; e++)
      if (trie.edgeByte[e] === b) {
        child = trie.edgeNode[e]!;
        break;
      }
    if (child < 0) return false;
    node = child;
  }
  return anyBelow(trie, node, after as Stack[]);
}

function anyBelow(trie: TrieView, node: number, configs: Stack[]): boolean {
  for (let e = trie.edgeStart[node]!; e < trie.edgeStart[node + 1]!; e++) {
    const next: Stack[] = [];
    for (const s of configs) step(s, trie.edgeByte[e]!, next);
    if (next.length === 0) continue;
    const child = trie.edgeNode[e]!;
    if (trie.tokStart[child + 1]! > trie.tokStart[child]!) return true;
    if (anyBelow(trie, child, next)) return true;
  }
  return false;
}

/** Text -> ids, or null when the text cannot be encoded to exactly these bytes. */
export type Encoder = (bytes: Uint8Array) => number[] | null;

/**
 * The ids to jump from `state`: the encoder's ids of the forced text (whole characters only), cut before
 * a trailing token that a longer allowed token could straddle; [] when nothing is forced.
 */
export function forcedIds(
  state: State,
  trie: TrieView,
  encode: Encoder,
  bytesOf: (id: number) => Uint8Array | null,
): number[] {
  const raw = forcedBytes(state);
  const text = raw.subarray(0, wholeCharsPrefix(raw));
  // The rest of a character the model began byte by byte: only byte tokens can follow (no piece starts
  // with a continuation byte), so they are the model's only choice.
  let lead = 0;
  while (lead < text.length && (text[lead]! & 0xc0) === 0x80) lead++;
  const ids: number[] = [];
  for (let i = 0; i < lead; i++) {
    const id = byteToken(trie, text[i]!);
    if (id < 0) return [];
    ids.push(id);
  }
  if (lead < text.length) {
    const rest = encode(text.subarray(lead));
    if (!rest) return ids;
    ids.push(...rest);
  }
  if (ids.length === 0) return [];
  const starts: number[] = [];
  let at = 0;
  for (const id of ids) {
    const b = bytesOf(id);
    if (!b || b.length === 0) return [];
    for (let i = 0; i < b.length; i++) if (text[at + i] !== b[i]) return [];
    starts.push(at);
    at += b.length;
  }
  if (at !== text.length) return [];
  const after = advance(state, text);
  if (!after) return [];
  while (ids.length > 0 && straddled(trie, text.subarray(starts[ids.length - 1]!), after)) ids.pop();
  return ids;
}

/** The token that is exactly the byte `b` (byte fallback), or -1. */
function byteToken(trie: TrieView, b: number): number {
  for (let e = trie.edgeStart[0]!; e < trie.edgeStart[1]!; e++) {
    if (trie.edgeByte[e] !== b) continue;
    const c = trie.edgeNode[e]!;
    return trie.tokStart[c + 1]! > trie.tokStart[c]! ? trie.tokIds[trie.tokStart[c]!]! : -1;
  }
  return -1;
}
