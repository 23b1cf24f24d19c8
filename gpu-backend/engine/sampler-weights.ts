/**
 * One pass over a logits row: every id's weight exp(-(max - logit) / T), and a histogram of those weights
 * in buckets that follow sampling order (bucket b holds t = (max - logit) / T in [b / 32, (b + 1) / 32)).
 *
 * exp(-t) = COARSE[b] * FINE[c] * exp(-x), with t = b / 32 + c / 4096 + x and x < 1 / 4096, where a cubic
 * gives exp(-x) to 2e-16 relative. So the weights match Math.exp to a few ulps without a libm call per id
 * (that call was most of the cost of a 32000-id pass), and the arithmetic is the same on every host.
 * Weights below exp(-128) (3e-56 of the max's) count as 0, like a masked id: no top_p < 1 can reach them.
 */

const PER_UNIT = 32;
const FINE_STEPS = 128;
const STEPS_PER_UNIT = PER_UNIT * FINE_STEPS;
const T_MAX = 128;
/** Bucket of every id whose weight counts as 0 (masked, or beyond T_MAX). */
export const ZERO_BUCKET = T_MAX * PER_UNIT;
export const COARSE = Float64Array.from({ length: ZERO_BUCKET + 1 }, (_, b) =>
  b < ZERO_BUCKET ? Math.exp(-b / PER_UNIT) : 0,
);
export const FINE = Float64Array.from({ length: FINE_STEPS }, (_, c) => Math.exp(-c / STEPS_PER_UNIT));
const Q_ZERO = ZERO_BUCKET * FINE_STEPS;

/** Per-bucket weight sums of the last weighAll. */
export const bucketMass = new Float64Array(ZERO_BUCKET + 1);

/**
 * Writes w[i] = exp(-(max - row[i]) * invT) and bucket[i] for every id, fills bucketMass, and returns the
 * sum of the weights (added in index order).
 */
export function weighAll(row: Float32Array, max: number, invT: number, w: Float64Array, bucket: Uint16Array): number {
  bucketMass.fill(0);
  let sum = 0;
  for (let i = 0; i < row.length; i++) {
    const t = (max - row[i]!) * invT;
    // One branch-free path (a Math.exp call in a rare branch cost 3x): far ids land on the zero bucket.
    const q = t < T_MAX ? t * STEPS_PER_UNIT : Q_ZERO;
    const k = q | 0;
    const x = (q - k) * (1 / STEPS_PER_UNIT); // exact
    const b = k >> 7;
    const e = COARSE[b]! * FINE[k & (FINE_STEPS - 1)]! * (1 - x * (1 - x * (1 / 2 - x * (1 / 6))));
    w[i] = e;
    bucket[i] = b;
    bucketMass[b] += e;
    sum += e;
  }
  return sum;
}
