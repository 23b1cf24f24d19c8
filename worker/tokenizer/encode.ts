/**
 * SentencePiece BPE encoder for Mistral v1, exact and linear.
 *
 * SentencePiece (bpe_model.cc): split the normalized text into characters, repeatedly merge the adjacent
 * pair whose concatenation is the highest-scoring piece (ties: leftmost first), then emit each symbol's
 * id, or its UTF-8 bytes as <0xXX> if it is not a piece (byte fallback). This file does exactly that,
 * with a binary heap and a linked list (O(n log n)), on independent chunks:
 *  - "\n" is in no piece, so each line is encoded alone and lines are joined with <0x0A> (id 13);
 *    the dummy prefix "▁" goes only in front of the first line.
 *  - No piece has a "▁" after a non-"▁" character, so no merge crosses a boundary "x|▁": each line is
 *    cut before every run of "▁" (spaces), giving word-like chunks whose ids are memoized.
 * Both facts are checked against tokenizer.model in test/node/tokenizer-vocab.test.ts.
 */
import { BYTE_OFFSET } from "./vocab-layout.js";
import { SPACE_RUN_RANK, getVocab, mergePair, type Vocab } from "./vocab.js";

const NEWLINE = 0x0a;
const NEWLINE_ID = BYTE_OFFSET + NEWLINE;
const SPACE_CODE = 0x2581;
/** Chunks up to this many UTF-16 units are memoized. */
const MAX_CACHED_CHUNK = 48;
/** Entries per cache generation; two generations are kept (a few MB at most). */
const CACHE_GENERATION = 1 << 14;
const RANK_SHIFT = 2 ** 32;

// Two-generation cache (approximate LRU, O(1)): when `recent` fills up it becomes `older` and the old
// `older` is dropped; a hit in `older` is promoted. (A FIFO Map with delete-oldest degrades badly in V8:
// iterating to the first live key skips every deleted slot.)
let recent = new Map<string, number[]>();
let older = new Map<string, number[]>();

/** Empties the chunk cache and the pair memo (benchmarks measure cold and warm runs). */
export function clearEncodeCache(): void {
  recent = new Map();
  older = new Map();
  const v = getVocab();
  v.pairKeys.fill(0);
  v.pairCount = 0;
}

/** Ids of `text` with the dummy prefix and no BOS; lone surrogates become U+FFFD first. */
export function encodeText(text: string): number[] {
  const out: number[] = [];
  if (text.length === 0) return out;
  const v = getVocab();
  // The leading " " is the dummy prefix. " " is never replaced by "▁" in the string: both map to the
  // id of "▁" (see bmpCharId), which saves a copy of the text.
  const s = " " + toWellFormed(text);
  const n = s.length;
  let start = 0;
  let prevSpace = true;
  for (let j = 1; j < n; j++) {
    const c = s.charCodeAt(j);
    if (c === NEWLINE) {
      if (start < j) encodeChunk(v, s, start, j, out);
      out.push(NEWLINE_ID);
      start = j + 1;
      prevSpace = false;
      continue;
    }
    const space = c === 0x20 || c === SPACE_CODE;
    if (space && !prevSpace && start < j) {
      encodeChunk(v, s, start, j, out);
      start = j;
    }
    prevSpace = space;
  }
  if (start < n) encodeChunk(v, s, start, n, out);
  return out;
}

function toWellFormed(text: string): string {
  // String.prototype.toWellFormed is in Node 20 and workerd; TS's ES2023 lib lacks its type.
  return (text as unknown as { toWellFormed(): string }).toWellFormed();
}

function encodeChunk(v: Vocab, s: string, start: number, end: number, out: number[]): void {
  if (end - start > MAX_CACHED_CHUNK) {
    bpe(v, s, start, end, out);
    return;
  }
  const key = s.slice(start, end);
  let cached = recent.get(key);
  if (cached === undefined) {
    cached = older.get(key);
    if (cached === undefined) {
      cached = [];
      bpe(v, key, 0, key.length, cached);
    }
    if (recent.size >= CACHE_GENERATION) {
      older = recent;
      recent = new Map();
    }
    recent.set(key, cached);
  }
  for (let i = 0; i < cached.length; i++) out.push(cached[i]);
}

// Scratch buffers reused across calls (grown on demand, released after a huge chunk: ~44 bytes per
// character); encoding is synchronous, so one set per isolate suffices.
const SMALL_SCRATCH = 256;
const KEEP_SCRATCH = 1 << 16;
let ids = new Int32Array(SMALL_SCRATCH);
let cps = new Int32Array(256);
let lens = new Int32Array(256);
let next = new Int32Array(256);
let prev = new Int32Array(256);
let heap = new Float64Array(SMALL_SCRATCH * 3);

function ensureCapacity(n: number): void {
  if (ids.length >= n) return;
  allocateScratch(Math.max(n, ids.length * 2));
}

function allocateScratch(size: number): void {
  ids = new Int32Array(size);
  cps = new Int32Array(size);
  lens = new Int32Array(size);
  next = new Int32Array(size);
  prev = new Int32Array(size);
  heap = new Float64Array(size * 3); // n - 1 initial pairs + at most 2 per merge
}

/** BPE over s[start, end) appended to out. */
function bpe(v: Vocab, s: string, start: number, end: number, out: number[]): void {
  ensureCapacity(end - start);
  // Symbols: one per code point.
  let n = 0;
  for (let i = start; i < end; i++) {
    let cp = s.charCodeAt(i);
    let id: number;
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < end) {
      cp = ((cp - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00) + 0x10000;
      id = v.astralCharId.get(cp) ?? -1;
    } else {
      id = v.bmpCharId[cp];
    }
    ids[n] = id;
    cps[n] = cp;
    lens[n] = cp > 0xffff ? 2 : 1;
    prev[n] = n - 1;
    next[n] = n + 1;
    n++;
  }
  next[n - 1] = -1;

  if (n > 1) merge(v, n);

  for (let i = 0; i >= 0; i = next[i]) {
    const id = ids[i];
    if (id >= 0) out.push(id);
    else pushUtf8Bytes(cps[i], out);
  }
  if (ids.length > KEEP_SCRATCH) allocateScratch(SMALL_SCRATCH);
}

/** Runs SentencePiece's merge loop over the n symbols in the scratch arrays. */
function merge(v: Vocab, n: number): void {
  heapSize = 0;
  for (let i = 0; i < n - 1; i++) pushPair(v, i);
  const pieceLen = v.pieceLen;
  while (heapSize > 0) {
    const top = popMin();
    const topRank = Math.floor(top / RANK_SHIFT);
    const left = top - topRank * RANK_SHIFT;
    const right = next[left];
    if (ids[left] < 0 || right < 0) continue; // left was merged away, or is now last
    // Stale entries are skipped as in SentencePiece: the pair at `left` must still span the merged piece's
    // text (same start, same length). If it does, it is equivalent to the live entry with the same key.
    let merged = topRank; // rank = id, except for the all-space pieces, which share one rank
    if (topRank === SPACE_RUN_RANK) {
      if (ids[right] < 0) continue;
      merged = mergePair(v, ids[left], ids[right]);
      if (merged < 0) continue;
    } else if (lens[left] + lens[right] !== pieceLen[merged]) {
      continue;
    }
    ids[left] = merged;
    lens[left] += lens[right];
    ids[right] = -2;
    const after = next[right];
    next[left] = after;
    if (after >= 0) prev[after] = left;
    if (prev[left] >= 0) pushPair(v, prev[left]);
    pushPair(v, left);
  }
}

let heapSize = 0;

/** Queues the pair starting at symbol `left` if it merges. Lower keys pop first: better rank, then leftmost. */
function pushPair(v: Vocab, left: number): void {
  const right = next[left];
  if (right < 0) return;
  const a = ids[left];
  const b = ids[right];
  if (a < 0 || b < 0) return;
  const merged = mergePair(v, a, b);
  if (merged < 0) return;
  const key = v.rank[merged] * RANK_SHIFT + left;
  let i = heapSize++;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent] <= key) break;
    heap[i] = heap[parent];
    i = parent;
  }
  heap[i] = key;
}

function popMin(): number {
  const top = heap[0];
  const last = heap[--heapSize];
  let i = 0;
  for (;;) {
    let c = 2 * i + 1;
    if (c >= heapSize) break;
    if (c + 1 < heapSize && heap[c + 1] < heap[c]) c++;
    if (heap[c] >= last) break;
    heap[i] = heap[c];
    i = c;
  }
  heap[i] = last;
  return top;
}

/** Byte fallback: one <0xXX> id per UTF-8 byte of the code point. */
function pushUtf8Bytes(cp: number, out: number[]): void {
  if (cp < 0x80) {
    out.push(BYTE_OFFSET + cp);
  } else if (cp < 0x800) {
    out.push(BYTE_OFFSET + (0xc0 | (cp >> 6)), BYTE_OFFSET + (0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push(
      BYTE_OFFSET + (0xe0 | (cp >> 12)),
      BYTE_OFFSET + (0x80 | ((cp >> 6) & 0x3f)),
      BYTE_OFFSET + (0x80 | (cp & 0x3f)),
    );
  } else {
    out.push(
      BYTE_OFFSET + (0xf0 | (cp >> 18)),
      BYTE_OFFSET + (0x80 | ((cp >> 12) & 0x3f)),
      BYTE_OFFSET + (0x80 | ((cp >> 6) & 0x3f)),
      BYTE_OFFSET + (0x80 | (cp & 0x3f)),
    );
  }
}
