/**
 * Runtime tables for Mistral v1's SentencePiece BPE, built lazily from vocab.generated.ts on first use
 * (about 10-20 ms once per isolate; nothing is read from outside the bundle).
 *
 * Scores are not stored: in tokenizer.model every normal piece has score -(id - 259), except the 15
 * pieces made only of "▁" (▁ x 1..16), which all have -1e9. So "highest score first" is "lowest rank
 * first" with rank = id, and the all-space pieces share one rank below every other piece (ties between
 * them are broken by position, like SentencePiece). test/node/tokenizer-vocab.test.ts proves this.
 */
import { NORMAL_PIECES } from "./vocab.generated.js";
import { BYTE_OFFSET, FIRST_NORMAL_ID, VOCAB_SIZE, specialPiece } from "./vocab-layout.js";

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
  /**
   * Open-addressing hash table: key (leftId * VOCAB_SIZE + rightId, never 0) -> merged id, for every split of
   * every normal piece into two normal pieces. A Map<number, number> was 3x slower in the BPE loop.
   */
  pairKeys: Int32Array;
  pairVals: Int32Array;
  /** BMP code unit -> id of the one-character normal piece, or -1; " " maps to "▁". */
  bmpCharId: Int32Array;
  /** Astral code point -> id of the one-character normal piece. */
  astralCharId: Map<number, number>;
}

/** 2^17 slots for ~59k pairs (load 0.45). */
const PAIR_BITS = 17;
const PAIR_SLOTS = 1 << PAIR_BITS;
const PAIR_MASK = PAIR_SLOTS - 1;

function pairSlot(key: number): number {
  return Math.imul(key, 0x9e3779b1) >>> (32 - PAIR_BITS);
}

/** Merged id of the pair (left, right), or -1. Both must be normal piece ids. */
export function mergePair(v: Vocab, left: number, right: number): number {
  const key = left * VOCAB_SIZE + right;
  const keys = v.pairKeys;
  for (let h = pairSlot(key); ; h = (h + 1) & PAIR_MASK) {
    const k = keys[h];
    if (k === key) return v.pairVals[h];
    if (k === 0) return -1;
  }
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
  for (let i = 0; i < normal.length; i++) {
    const id = FIRST_NORMAL_ID + i;
    const p = normal[i];
    pieces[id] = p;
    pieceToId.set(p, id);
    rank[id] = isSpaceRun(p) ? SPACE_RUN_RANK : id;
  }
  const pairKeys = new Int32Array(PAIR_SLOTS);
  const pairVals = new Int32Array(PAIR_SLOTS);
  for (let i = 0; i < normal.length; i++) {
    const p = normal[i];
    // Split points at code point boundaries only (a surrogate pair is one symbol).
    for (let k = 1; k < p.length; k++) {
      if (isLowSurrogate(p.charCodeAt(k))) continue;
      const left = pieceToId.get(p.slice(0, k));
      if (left === undefined) continue;
      const right = pieceToId.get(p.slice(k));
      if (right === undefined) continue;
      const key = left * VOCAB_SIZE + right;
      let h = pairSlot(key);
      while (pairKeys[h] !== 0) h = (h + 1) & PAIR_MASK;
      pairKeys[h] = key;
      pairVals[h] = FIRST_NORMAL_ID + i;
    }
  }
  const bmpCharId = new Int32Array(0x10000).fill(-1);
  const astralCharId = new Map<number, number>();
  for (let i = 0; i < normal.length; i++) {
    const p = normal[i];
    const cp = p.codePointAt(0)!;
    if (p.length === 1) bmpCharId[cp] = FIRST_NORMAL_ID + i;
    // The encoder leaves spaces unescaped: " " stands for "▁" (no piece contains " ").
    if (p === SPACE) bmpCharId[0x20] = FIRST_NORMAL_ID + i;
    else if (p.length === 2 && cp > 0xffff) astralCharId.set(cp, FIRST_NORMAL_ID + i);
  }
  return { pieces, pieceToId, rank, pairKeys, pairVals, bmpCharId, astralCharId };
}

function isSpaceRun(p: string): boolean {
  for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) !== 0x2581) return false;
  return true;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

export function isByteId(id: number): boolean {
  return id >= BYTE_OFFSET && id < FIRST_NORMAL_ID;
}
