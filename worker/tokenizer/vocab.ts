/**
 * Runtime tables for Mistral v1's SentencePiece BPE, built lazily from vocab.generated.ts on first use
 * (a string split and one Map: ~20 ms once per isolate; nothing is read from outside the bundle).
 *
 * Scores are not stored: in tokenizer.model every normal piece has score -(id - 259), except the 15
 * pieces made only of "▁", which all have -1e9. So "highest score first" is "lowest rank first" with
 * rank = id, and the all-space pieces share one rank below every other piece (ties between them are
 * broken by position, like SentencePiece). test/node/tokenizer-vocab.test.ts proves this.
 */
import { NORMAL_PIECES } from "./vocab.generated.js";
import { FIRST_NORMAL_ID, VOCAB_SIZE, specialPiece } from "./vocab-layout.js";

export const SPACE = "\u2581";
/** Rank shared by the all-"▁" pieces (score -1e9): worse than any other piece. */
export const SPACE_RUN_RANK = VOCAB_SIZE;

export interface Vocab {
  /** Piece string per id (32000), specials and <0xXX> included. */
  pieces: string[];
  /** Normal pieces only (the ones SentencePiece's BPE may produce): string -> id. */
  pieceToId: Map<string, number>;
  /** Merge priority per id; lower merges first. */
  rank: Int32Array;
  /** Length of each normal piece in UTF-16 units (0 for other ids). */
  pieceLen: Int32Array;
  /**
   * Memo of pair lookups, open addressing: key (leftId * VOCAB_SIZE + rightId, never 0) -> merged id or -1.
   * Filled on demand (SentencePiece's rule: a pair merges iff the concatenation is a normal piece);
   * a Map<number, number> was 3x slower in the BPE loop, and precomputing all 59k pairs cost 60 ms.
   */
  pairKeys: Int32Array;
  pairVals: Int32Array;
  pairCount: number;
  /** BMP code unit -> id of the one-character normal piece, or -1; " " maps to "▁". */
  bmpCharId: Int32Array;
  /** Astral code point -> id of the one-character normal piece. */
  astralCharId: Map<number, number>;
}

const PAIR_BITS = 17;
const PAIR_SLOTS = 1 << PAIR_BITS;
const PAIR_MASK = PAIR_SLOTS - 1;
/** Cleared when half full, so adversarial input cannot degrade probing or grow memory. */
const PAIR_MAX = PAIR_SLOTS >> 1;

function pairSlot(key: number): number {
  return Math.imul(key, 0x9e3779b1) >>> (32 - PAIR_BITS);
}

/** Id of the normal piece pieces[left] + pieces[right], or -1. Both must be normal piece ids. */
export function mergePair(v: Vocab, left: number, right: number): number {
  const key = left * VOCAB_SIZE + right;
  const keys = v.pairKeys;
  let h = pairSlot(key);
  for (;;) {
    const k = keys[h];
    if (k === key) return v.pairVals[h];
    if (k === 0) break;
    h = (h + 1) & PAIR_MASK;
  }
  const merged = v.pieceToId.get(v.pieces[left] + v.pieces[right]) ?? -1;
  if (v.pairCount >= PAIR_MAX) {
    keys.fill(0);
    v.pairCount = 0;
    h = pairSlot(key);
  }
  keys[h] = key;
  v.pairVals[h] = merged;
  v.pairCount++;
  return merged;
}

let vocab: Vocab | undefined;

export function getVocab(): Vocab {
  return (vocab ??= buildVocab());
}

function buildVocab(): Vocab {
  const normal = NORMAL_PIECES.split("\n");
  const pieces: string[] = new Array(VOCAB_SIZE);
  for (let id = 0; id < FIRST_NORMAL_ID; id++) pieces[id] = specialPiece(id);
  const pieceToId = new Map<string, number>();
  const rank = new Int32Array(VOCAB_SIZE).fill(SPACE_RUN_RANK + 1);
  const pieceLen = new Int32Array(VOCAB_SIZE);
  const bmpCharId = new Int32Array(0x10000).fill(-1);
  const astralCharId = new Map<number, number>();
  for (let i = 0; i < normal.length; i++) {
    const id = FIRST_NORMAL_ID + i;
    const p = normal[i];
    pieces[id] = p;
    pieceToId.set(p, id);
    rank[id] = isSpaceRun(p) ? SPACE_RUN_RANK : id;
    pieceLen[id] = p.length;
    const cp = p.codePointAt(0)!;
    if (p.length === 1) bmpCharId[cp] = id;
    else if (p.length === 2 && cp > 0xffff) astralCharId.set(cp, id);
  }
  // The encoder leaves spaces unescaped: " " stands for "▁" (no piece contains " ").
  bmpCharId[0x20] = bmpCharId[SPACE.charCodeAt(0)];
  return {
    pieces,
    pieceToId,
    rank,
    pieceLen,
    pairKeys: new Int32Array(PAIR_SLOTS),
    pairVals: new Int32Array(PAIR_SLOTS),
    pairCount: 0,
    bmpCharId,
    astralCharId,
  };
}

function isSpaceRun(p: string): boolean {
  for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) !== 0x2581) return false;
  return true;
}
