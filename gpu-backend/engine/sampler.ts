/**
 * Token sampling: greedy, temperature, top-k, top-p, with a small seeded PRNG per request so the same
 * request with the same seed yields the same tokens.
 */
import { mulberry32 } from "./rng";

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

/** Samples one id from a logits row. Greedy when temperature is 0 (ties -> lowest id). */
export function sampleToken(row: Float32Array, p: SamplingParams, rng: () => number): number {
  if (p.temperature === 0 || p.top_k === 1) return argmax(row);
  const V = row.length;
  // Candidate set: top-k by logit (or everything), sorted descending.
  let idx: number[];
  if (p.top_k > 0 && p.top_k < V) {
    idx = topKIndices(row, p.top_k);
  } else {
    idx = Array.from({ length: V }, (_, i) => i);
    idx.sort((a, b) => row[b]! - row[a]!);
  }
  const max = row[idx[0]!]!;
  const probs = new Float64Array(idx.length);
  let sum = 0;
  for (let i = 0; i < idx.length; i++) {
    const e = Math.exp((row[idx[i]!]! - max) / p.temperature);
    probs[i] = e;
    sum += e;
  }
  // Nucleus: keep the smallest prefix whose mass reaches top_p.
  let keep = idx.length;
  if (p.top_p < 1) {
    let acc = 0;
    for (let i = 0; i < idx.length; i++) {
      acc += probs[i]! / sum;
      if (acc >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  let mass = 0;
  for (let i = 0; i < keep; i++) mass += probs[i]!;
  let r = rng() * mass;
  for (let i = 0; i < keep; i++) {
    r -= probs[i]!;
    if (r <= 0) return idx[i]!;
  }
  return idx[keep - 1]!;
}

function topKIndices(row: Float32Array, k: number): number[] {
  // Partial selection: keep a sorted array of the best k (k is small in practice).
  const best: number[] = [];
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (best.length === k && v <= row[best[k - 1]!]!) continue;
    let j = best.length === k ? k - 1 : best.length;
    if (best.length < k) best.push(i);
    while (j > 0 && row[best[j - 1]!]! < v) {
      best[j] = best[j - 1]!;
      j--;
    }
    best[j] = i;
  }
  return best;
}
