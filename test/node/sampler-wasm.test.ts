/**
 * The sampler's WebAssembly passes (gpu-backend/engine/sampler-wasm) against their JavaScript reference:
 * the same weights, buckets, bucket masses and sum bit for bit (so seeded draws do not change with the
 * kernel), the same max and NaN handling, the same ids per bucket, the same draw inside a bucket. Rows of
 * odd and tiny lengths cover the SIMD loops' tails. And the committed bytes are weigh.wat's.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { RowKernels } from "../../gpu-backend/engine/sampler-wasm";
import { bucketMass, weighAll, ZERO_BUCKET } from "../../gpu-backend/engine/sampler-weights";
import { mulberry32 } from "../../gpu-backend/engine/rng";
import { GENERATED, samplerWasmModule } from "../../scripts/lib/sampler-wasm";

/** A row of n logits: normal-ish values of spread `scale`, some ties, -inf (masked) ids, and far outliers. */
function row(n: number, seed: number, scale: number): Float32Array {
  const rnd = mulberry32(seed);
  const r = Float32Array.from({ length: n }, () => scale * (rnd() + rnd() + rnd() - 1.5));
  for (let i = 0; i < n; i += 7) r[i] = r[Math.floor(rnd() * n)]!; // ties
  for (let i = 3; i < n; i += 11) r[i] = -Infinity;
  if (n > 5) r[5] = -1e6; // beyond T_MAX: the zero bucket
  return r;
}

const jsMax = (r: Float32Array) =>
  // biome-ignore lint/complexity/useMathMinMax: the sampler's own loop (NaN never wins; equal values keep the first)
  r.reduce((m, v) => (v > m ? v : m), -Infinity);

describe("sampler WebAssembly kernels", () => {
  const k = new RowKernels();
  const lengths = [1, 2, 7, 8, 9, 31, 1000, 32000, 32001];

  it("weigh matches weighAll bit for bit: weights, buckets, bucket masses and sum", () => {
    for (const n of lengths)
      for (const [seed, scale, T] of [
        [1, 2, 0.7],
        [2, 0.05, 1],
        [3, 40, 0.3],
        [4, 8, 2],
      ] as const) {
        const r = row(n, seed * 1000 + n, scale);
        const max = k.load(r);
        expect(max === jsMax(r)).toBe(true); // == on purpose: -0 and +0 weigh alike
        const w = new Float64Array(n);
        const b = new Uint16Array(n);
        const want = weighAll(r, max, 1 / T, w, b);
        const got = k.weigh(max, 1 / T);
        expect(got, `sum n=${n} seed=${seed}`).toBe(want);
        expect(Buffer.from(k.weights.buffer, k.weights.byteOffset, 8 * n).equals(Buffer.from(w.buffer))).toBe(true);
        expect(Array.from(k.buckets.subarray(0, n))).toEqual(Array.from(b));
        expect(Array.from(k.bucketMass)).toEqual(Array.from(bucketMass));
      }
  });

  it("signed zeros, denormals and the float32 extremes weigh as in the reference", () => {
    const r = Float32Array.from([-0, 0, 1e-45, -1e-45, 3.4e38, -3.4e38, -0, 1e-40, 0, -Infinity, 2.5]);
    for (const row of [r, r.map(() => -0), r.map(() => 0), r.subarray(0, 9)])
      for (const T of [1e-300, 0.01, 1, 1e300]) {
        const max = k.load(row);
        const w = new Float64Array(row.length);
        const b = new Uint16Array(row.length);
        expect(k.weigh(max, 1 / T)).toBe(weighAll(row, max, 1 / T, w, b));
        expect(Array.from(k.weights.subarray(0, row.length))).toEqual(Array.from(w));
        expect(Array.from(k.buckets.subarray(0, row.length))).toEqual(Array.from(b));
      }
  });

  it("load returns the max, NaN when a value is NaN, -Infinity for a fully masked row", () => {
    for (const n of lengths) {
      const r = row(n, n, 3);
      expect(k.load(r)).toBe(jsMax(r));
      // A NaN in either half of an 8-value block and in the scalar tail (the SIMD loop keeps two f32x4
      // maxima): f32x4.pmax, for one, would drop a NaN in the first half.
      for (const at of new Set([0, 1, 2, 5, 9, n - 1].filter((i) => i < n))) {
        const withNaN = r.slice();
        withNaN[at] = Number.NaN;
        expect(k.load(withNaN), `NaN at ${at} of ${n}`).toBeNaN();
      }
      expect(k.load(new Float32Array(n).fill(-Infinity))).toBe(-Infinity);
    }
  });

  it("collect lists a bucket's ids in ascending order", () => {
    for (const n of lengths) {
      const r = row(n, 77 + n, 1);
      k.weigh(k.load(r), 1);
      const buckets = Array.from(k.buckets.subarray(0, n));
      for (const b of new Set([...buckets.slice(0, 20), ZERO_BUCKET, 4095])) {
        const count = k.collect(b);
        const want = buckets.flatMap((x, i) => (x === b ? [i] : []));
        expect(Array.from(k.ids.subarray(0, count)), `n=${n} bucket ${b}`).toEqual(want);
      }
    }
  });

  it("drawBucket walks a bucket's positive weights in index order, with the last one as the fallback", () => {
    const reference = (buckets: Uint16Array, w: Float64Array, c: number, r: number) => {
      let last = -1;
      for (let i = 0; i < buckets.length; i++) {
        if (buckets[i] !== c || !(w[i]! > 0)) continue;
        last = i;
        r -= w[i]!;
        if (r < 0) return i;
      }
      return last;
    };
    const rnd = mulberry32(9);
    for (const n of lengths) {
      const r = row(n, 500 + n, 1);
      k.weigh(k.load(r), 1);
      const buckets = k.buckets.slice(0, n);
      const w = k.weights.slice(0, n);
      for (const c of new Set([...buckets.slice(0, 10), ZERO_BUCKET])) {
        let mass = 0;
        for (let i = 0; i < n; i++) if (buckets[i] === c && w[i]! > 0) mass += w[i]!;
        for (const at of [0, rnd() * mass, rnd() * mass, mass * 0.999999, mass * 2]) {
          expect(k.drawBucket(c, at), `n=${n} bucket ${c} r=${at}`).toBe(reference(buckets, w, c, at));
        }
      }
    }
  });

  it("weigh.generated.ts is weigh.wat assembled (else: npm run build:wasm)", async () => {
    expect(readFileSync(GENERATED, "utf8") === (await samplerWasmModule()), "run npm run build:wasm").toBe(true);
  });
});
