/** tokenLogprob (gpu-backend/engine/sampler.ts) against a naive float64 log-softmax with a full sort. */
import { describe, expect, it } from "vitest";
import { createRng, tokenLogprob } from "../../gpu-backend/engine/sampler";

function naive(row: Float32Array): number[] {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return Array.from(row, (v) => v - max - Math.log(sum));
}

describe("tokenLogprob", () => {
  const V = 32000;
  const rng = createRng(1);
  const row = Float32Array.from({ length: V }, () => (rng() - 0.5) * 20);

  it("exp over the full distribution sums to 1 within 1e-4 and matches a naive log-softmax", () => {
    const all = tokenLogprob(row, 17, V);
    expect(all.top).toHaveLength(V);
    expect(Math.abs(all.top.reduce((a, t) => a + Math.exp(t.logprob), 0) - 1)).toBeLessThan(1e-4);
    const ref = naive(row);
    expect(all.logprob).toBeCloseTo(ref[17]!, 5);
    for (const t of all.top.slice(0, 50)) expect(t.logprob).toBeCloseTo(ref[t.id]!, 5);
  });

  it("top alternatives are the k best, sorted, ties broken by lower id, all <= 0", () => {
    const r = Float32Array.from(row);
    r[100] = 30;
    r[50] = 30;
    r[7] = 29;
    const { top } = tokenLogprob(r, 7, 20);
    expect(top.slice(0, 3).map((t) => t.id)).toEqual([50, 100, 7]);
    const sorted = Array.from(r.keys())
      .sort((a, b) => r[b]! - r[a]! || a - b)
      .slice(0, 20);
    expect(top.map((t) => t.id)).toEqual(sorted);
    for (let i = 1; i < top.length; i++) expect(top[i]!.logprob).toBeLessThanOrEqual(top[i - 1]!.logprob);
    expect(top.every((t) => t.logprob <= 0)).toBe(true);
  });

  it("masked (-Infinity) tokens are never listed and do not shift the others' mass", () => {
    const r = Float32Array.from(row).fill(-Infinity);
    r[3] = 1;
    r[9] = 1;
    const { logprob, top } = tokenLogprob(r, 9, 20);
    expect(top.map((t) => t.id)).toEqual([3, 9]);
    expect(logprob).toBeCloseTo(Math.log(0.5), 10);
  });

  it("k = 0 lists nothing", () => {
    expect(tokenLogprob(row, 0, 0).top).toEqual([]);
  });
});
