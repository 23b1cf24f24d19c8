/**
 * Token sampling: greedy, temperature, top-k, top-p, with a small seeded PRNG per request so the same
 * request with the same seed yields the same tokens.
 *
 * Nothing here sorts the vocabulary (a per-token sort of V = 32000 ids cost 11–19 ms):
 * - One pass over the row computes every weight exp(-(max - logit) / T) from a table and a short
 *   polynomial (sampler-weights.ts: no Math.exp call per id) and files each id in a histogram bucket of its
 *   weight. The passes over all V ids (max, weights, a bucket's ids, the draw in a bucket) run in
 *   WebAssembly (sampler-wasm/), bit-identical to the JavaScript reference.
 * - top_p = 1, no top-k: one draw walking ids in index order.
 * - top_p < 1: the buckets are in sampling order, so a walk over the bucket masses finds the one bucket
 *   the nucleus boundary falls in; only that bucket's ids are ordered (a mass-weighted quickselect).
 *   The draw picks a bucket by mass, then an id inside it by one scan of the bucket labels.
 * - top-k: a bounded heap (quickselect for large k) picks the k best logits; only those are weighed.
 *
 * Sampling order: higher logit first; equal logits -> lower id first. It decides which tied tokens a top-k or
 * nucleus boundary keeps, exactly as a stable full sort did, so the kept set and its probabilities are
 * the full sort's (up to float rounding in the order sums are added, which only matters when the cumulative
 * mass lands within ~1e-12 of top_p). Each non-greedy token takes exactly one rng() draw, greedy none, so
 * seeded requests reproduce run to run.
 */
import { mulberry32 } from "./rng";
import { RowKernels } from "./sampler-wasm";
import { ZERO_BUCKET } from "./sampler-weights";

export interface SamplingParams {
  temperature: number;
  top_p: number;
  /** 0 disables top-k. */
  top_k: number;
}

/** A request's sampling PRNG: mulberry32 over the seed (mixed so seed 0 is not a weak state). */
export function createRng(seed: number): () => number {
  return mulberry32((seed >>> 0) ^ 0x9e3779b9);
}

export function argmax(row: Float32Array): number {
  let best = 0;
  let bestV = -Infinity;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}

/** Samples one id from a logits row. Greedy when temperature is 0 or top_k is 1 (ties -> lowest id). */
export function sampleToken(row: Float32Array, p: SamplingParams, rng: () => number): number {
  const n = prepare(row, p);
  if (n === GREEDY) return argmax(row);
  const w = kernels.weights;
  if (n === EVERY) {
    let r = rng() * everySum;
    for (let i = 0; i < row.length; i++) {
      r -= w[i]!;
      if (r < 0) return i;
    }
    return lastPositive(row.length, (j) => j);
  }
  if (n === NUCLEUS) return drawNucleus(rng);
  const id = kernels.ids;
  let mass = 0;
  for (let j = 0; j < n; j++) mass += w[id[j]!]!;
  let r = rng() * mass;
  for (let j = 0; j < n; j++) {
    r -= w[id[j]!]!;
    if (r < 0) return id[j]!;
  }
  return lastPositive(n, (j) => id[j]!);
}

/**
 * sampleToken over `row` with every id outside among[0, n) (ascending) masked to -Infinity, without writing
 * the row or visiting the other ids: the same draw bit for bit and the same rng use. A masked id adds exactly
 * 0 to every weight sum and is never walked, and the listed ids keep their order, so the compacted row
 * draws the same position. -1 (nothing drawn, no rng used) when the dense draw would differ: top_k > 1
 * (its pool and weights depend on the masked ids when k exceeds n), or no listed id above -Infinity (the
 * dense greedy fallback then picks id 0).
 */
export function sampleAmong(
  row: Float32Array,
  among: Int32Array,
  n: number,
  p: SamplingParams,
  rng: () => number,
): number {
  if (p.top_k > 1 && p.temperature !== 0) return -1;
  if (compact.length < n) compact = new Float32Array(Math.max(n, 2 * compact.length));
  let any = false;
  for (let j = 0; j < n; j++) {
    const v = row[among[j]!]!;
    compact[j] = v;
    if (v > -Infinity) any = true;
  }
  if (!any) return -1;
  return among[sampleToken(compact.subarray(0, n), p, rng)]!;
}

/**
 * The distribution sampleToken draws from for this row: ids ascending, with their renormalised
 * probabilities (zero-weight ids inside a top-k set are listed with probability 0). Shares the selection
 * code with sampleToken; for tests and debugging.
 */
export function samplingDistribution(row: Float32Array, p: SamplingParams): { ids: number[]; probs: number[] } {
  const n = prepare(row, p);
  if (n === GREEDY) return { ids: [argmax(row)], probs: [1] };
  const { ids, weights } = kernels;
  const kept =
    n === EVERY
      ? Array.from({ length: row.length }, (_, i) => i)
      : n === NUCLEUS
        ? [...Array.from(ids.subarray(0, boundaryKeep)), ...bucketIdsBelow(row.length, boundary)]
        : Array.from(ids.subarray(0, n));
  kept.sort((a, b) => a - b);
  let mass = 0;
  for (const i of kept) mass += weights[i]!;
  return { ids: kept, probs: kept.map((i) => weights[i]! / mass) };
}

/**
 * Log-probability of `chosen` and the `k` most likely ids (sampling order: higher logit, then lower id),
 * from the log-softmax of `row` at temperature 1. -Infinity logits (masked) are never listed. The k best
 * come from the same partial selection as top-k sampling; only those k are sorted.
 */
export function tokenLogprob(
  row: Float32Array,
  chosen: number,
  k: number,
): { logprob: number; top: Array<{ id: number; logprob: number }> } {
  const V = row.length;
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(row[i]! - max);
  const lse = max + Math.log(sum);
  const top: Array<{ id: number; logprob: number }> = [];
  const n = Math.min(k, V);
  if (n > 0) {
    kernels.ensure(V);
    const ids = kernels.ids;
    selectTopK(row, ids, V, n);
    const best = Array.from(ids.subarray(0, n)).sort((a, b) => (before(row, a, b) ? -1 : 1));
    for (const id of best) if (row[id]! > -Infinity) top.push({ id, logprob: row[id]! - lse });
  }
  return { logprob: row[chosen]! - lse, top };
}

// prepare() results besides a count: draw greedily; from every id (weights[0, V) set, sum in everySum); or
// from the nucleus: every id in a bucket before `boundary`, plus ids[0, boundaryKeep) of that bucket.
const GREEDY = -1;
const EVERY = -2;
const NUCLEUS = -3;

// Scratch reused across calls (sampling is synchronous, so one set per thread is enough): the row's copy,
// per-id weights exp((logit - max) / T) and buckets, and a permutation of candidate ids.
const kernels = new RowKernels();
let compact = new Float32Array(0);
let everySum = 0;
let boundary = 0;
let boundaryKeep = 0;
let massBefore = 0;

/**
 * Chooses the support for one draw. Returns GREEDY, EVERY, NUCLEUS, or n > 0 with the support in ids[0, n)
 * (in no particular order) and each one's weight in weights[id].
 */
function prepare(row: Float32Array, p: SamplingParams): number {
  if (p.temperature === 0 || p.top_k === 1) return GREEDY;
  const V = row.length;
  const max = kernels.load(row);
  // No finite distribution to draw from (all -inf, a +inf logit, or NaN): fall back to greedy.
  if (Number.isNaN(max) || max === -Infinity || max === Infinity) return GREEDY;
  const w = kernels.weights;
  const id = kernels.ids;
  const T = p.temperature;

  if (p.top_k > 0 && p.top_k < V) {
    // Top-k pool: the k best; top_p is then relative to their mass, not the vocabulary's.
    const k = p.top_k;
    selectTopK(row, id, V, k);
    let sum = 0;
    for (let j = 0; j < k; j++) {
      const e = Math.exp((row[id[j]!]! - max) / T);
      w[id[j]!] = e;
      sum += e;
    }
    return p.top_p < 1 ? selectNucleus(row, w, id, k, p.top_p * sum) : k;
  }

  const sum = kernels.weigh(max, 1 / T);
  const bucketMass = kernels.bucketMass;
  if (!(p.top_p < 1)) {
    everySum = sum;
    return EVERY;
  }
  // Buckets are in sampling order: the nucleus is every bucket before the one where the running mass
  // reaches top_p * sum, plus a prefix of that bucket's ids (ordered there, and only there).
  const target = p.top_p * sum;
  let before = 0;
  let b = 0;
  for (; b < ZERO_BUCKET; b++) {
    if (before + bucketMass[b]! >= target) break;
    before += bucketMass[b]!;
  }
  const n = kernels.collect(b);
  boundary = b;
  massBefore = before;
  boundaryKeep = selectNucleus(row, w, id, n, target - before);
  return NUCLEUS;
}

/** One draw from the nucleus prepare() left: a bucket by mass, then an id inside it in index order. */
function drawNucleus(rng: () => number): number {
  const { weights: w, ids, bucketMass } = kernels;
  let kept = 0;
  for (let j = 0; j < boundaryKeep; j++) kept += w[ids[j]!]!;
  let r = rng() * (massBefore + kept);
  if (r >= massBefore || boundary === 0) {
    r -= massBefore;
    for (let j = 0; j < boundaryKeep; j++) {
      r -= w[ids[j]!]!;
      if (r < 0) return ids[j]!;
    }
    return lastPositive(boundaryKeep, (j) => ids[j]!);
  }
  let c = 0;
  while (c < boundary - 1 && r >= bucketMass[c]!) r -= bucketMass[c++]!;
  // The last positive id of bucket c is the rounding fallback, as in every other draw.
  const id = kernels.drawBucket(c, r);
  return id >= 0 ? id : ids[0]!;
}

/** Ids in buckets before b (for samplingDistribution). */
function bucketIdsBelow(V: number, b: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < V; i++) if (kernels.buckets[i]! < b) out.push(i);
  return out;
}

/** The rounding fallback of a draw: r never went negative, so the last id with weight wins. */
function lastPositive(n: number, at: (j: number) => number): number {
  const weights = kernels.weights;
  for (let j = n - 1; j > 0; j--) if (weights[at(j)]! > 0) return at(j);
  return at(0);
}

/** a precedes b in sampling order: higher logit first, ties -> lower id. */
function before(row: Float32Array, a: number, b: number): boolean {
  const x = row[a]!;
  const y = row[b]!;
  return x > y || (x === y && a < b);
}

const SMALL = 16;
// Above this k a heap costs more than quickselect's few O(V) passes.
const HEAP_MAX_K = 1024;

/** Puts the first k ids of row in sampling order into ids[0, k) (in no particular order). */
function selectTopK(row: Float32Array, id: Int32Array, V: number, k: number): void {
  if (k > HEAP_MAX_K) {
    for (let i = 0; i < V; i++) id[i] = i;
    selectFirstK(row, id, V, k);
    return;
  }
  // Heap over ids[0, k) whose root is the member that comes last in sampling order. Ids arrive in index
  // order, so a newcomer with a logit equal to the root's has the higher id and comes after it: only a
  // strictly higher logit displaces the root, and most ids cost one comparison.
  for (let i = 0; i < k; i++) id[i] = i;
  for (let j = (k >>> 1) - 1; j >= 0; j--) siftDown(row, id, k, j);
  let floor = row[id[0]!]!;
  for (let i = k; i < V; i++) {
    if (row[i]! > floor) {
      id[0] = i;
      siftDown(row, id, k, 0);
      floor = row[id[0]!]!;
    }
  }
}

function siftDown(row: Float32Array, id: Int32Array, n: number, j: number): void {
  const v = id[j]!;
  for (;;) {
    let c = 2 * j + 1;
    if (c >= n) break;
    if (c + 1 < n && before(row, id[c]!, id[c + 1]!)) c++;
    if (!before(row, v, id[c]!)) break;
    id[j] = id[c]!;
    j = c;
  }
  id[j] = v;
}

/** Reorders ids[0, n) so that ids[0, k) are the first k in sampling order (in no particular order). */
function selectFirstK(row: Float32Array, id: Int32Array, n: number, k: number): void {
  let lo = 0;
  let hi = n;
  // Invariant: ids[0, lo) precede ids[lo, hi), which precede ids[hi, n); lo <= k <= hi.
  while (hi - lo > SMALL) {
    const q = partition(row, id, lo, hi);
    if (q === k) return;
    if (q < k) lo = q + 1;
    else hi = q;
  }
  insertionSort(row, id, lo, hi);
}

/**
 * The nucleus: reorders ids[0, n) and returns the smallest keep >= 1 such that ids[0, keep) is a prefix of
 * the sampling order whose weight reaches target (n when rounding keeps it short of target).
 */
function selectNucleus(row: Float32Array, w: Float64Array, id: Int32Array, n: number, target: number): number {
  let lo = 0;
  let hi = n;
  // Invariant: ids[0, lo) are in the nucleus and `need` is what they leave of target; the boundary is in
  // [lo, hi), and ids[0, hi) already reach target when hi < n.
  let need = target;
  while (hi - lo > SMALL) {
    const q = partition(row, id, lo, hi);
    let ahead = 0;
    for (let j = lo; j < q; j++) ahead += w[id[j]!]!;
    if (q > lo && ahead >= need) {
      hi = q;
    } else {
      const through = ahead + w[id[q]!]!;
      if (through >= need) return q + 1;
      need -= through;
      lo = q + 1;
    }
  }
  insertionSort(row, id, lo, hi);
  let acc = 0;
  for (let j = lo; j < hi; j++) {
    acc += w[id[j]!]!;
    if (acc >= need) return j + 1;
  }
  return hi;
}

/**
 * Lomuto partition of ids[lo, hi) (at least 3 long) around a median-of-three pivot; returns its final
 * position: everything left of it precedes it in sampling order, everything right follows. The order is
 * total (ids break ties), so there are no equal keys to degrade on.
 */
function partition(row: Float32Array, id: Int32Array, lo: number, hi: number): number {
  const mid = (lo + hi) >>> 1;
  const last = hi - 1;
  if (before(row, id[mid]!, id[lo]!)) swap(id, mid, lo);
  if (before(row, id[last]!, id[lo]!)) swap(id, last, lo);
  // ids[lo] is now the first of the three; the median is whichever of the other two comes first.
  if (before(row, id[mid]!, id[last]!)) swap(id, mid, last);
  const pv = id[last]!;
  const px = row[pv]!;
  let s = lo;
  for (let j = lo; j < last; j++) {
    const i = id[j]!;
    const x = row[i]!;
    if (x > px || (x === px && i < pv)) {
      id[j] = id[s]!;
      id[s] = i;
      s++;
    }
  }
  id[last] = id[s]!;
  id[s] = pv;
  return s;
}

function insertionSort(row: Float32Array, id: Int32Array, lo: number, hi: number): void {
  for (let j = lo + 1; j < hi; j++) {
    const i = id[j]!;
    let t = j;
    while (t > lo && before(row, i, id[t - 1]!)) {
      id[t] = id[t - 1]!;
      t--;
    }
    id[t] = i;
  }
}

function swap(id: Int32Array, a: number, b: number): void {
  const t = id[a]!;
  id[a] = id[b]!;
  id[b] = t;
}
