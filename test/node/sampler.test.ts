/**
 * Pins the sampler's distribution against a naive full-sort reference (the pre-selection algorithm), so a
 * faster sampler cannot change which tokens are drawn or how often. Seeded, so the chi-square checks are
 * deterministic.
 */
import { describe, expect, it } from "vitest";
import { createRng, sampleToken, samplingDistribution, type SamplingParams } from "../../gpu-backend/engine/sampler";
import { weighAll } from "../../gpu-backend/engine/sampler-weights";

/** Reference: sort every id (logit desc, ties -> lower id), softmax at T, keep the smallest prefix reaching top_p. */
function naive(row: Float32Array, p: SamplingParams): Map<number, number> {
  if (p.temperature === 0 || p.top_k === 1) {
    let best = 0;
    for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
    return new Map([[best, 1]]);
  }
  const order = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b);
  const pool = p.top_k > 0 && p.top_k < row.length ? order.slice(0, p.top_k) : order;
  const max = row[pool[0]!]!;
  const e = pool.map((i) => Math.exp((row[i]! - max) / p.temperature));
  const sum = e.reduce((a, b) => a + b, 0);
  let keep = pool.length;
  if (p.top_p < 1) {
    let acc = 0;
    for (let j = 0; j < pool.length; j++) {
      acc += e[j]! / sum;
      if (acc >= p.top_p) {
        keep = j + 1;
        break;
      }
    }
  }
  const mass = e.slice(0, keep).reduce((a, b) => a + b, 0);
  return new Map(pool.slice(0, keep).map((i, j) => [i, e[j]! / mass]));
}

function expectSameDistribution(row: Float32Array, p: SamplingParams, tol = 1e-12): Map<number, number> {
  const want = naive(row, p);
  const got = samplingDistribution(row, p);
  expect(got.ids).toEqual([...want.keys()].sort((a, b) => a - b));
  // Relative: sums are added in a different order, so the last bits may differ.
  got.ids.forEach((id, j) => {
    expect(Math.abs(got.probs[j]! - want.get(id)!)).toBeLessThanOrEqual(tol * want.get(id)!);
  });
  return want;
}

/** Upper 0.1% point of chi-square with df degrees of freedom (Wilson–Hilferty). */
function chi2Critical(df: number): number {
  const z = 3.0902;
  const a = 2 / (9 * df);
  return df * (1 - a + z * Math.sqrt(a)) ** 3;
}

/** Draws n tokens with a fixed seed; checks nothing lands outside the support and the counts fit `want`. */
function expectSampledFit(row: Float32Array, p: SamplingParams, want: Map<number, number>, n = 40_000, seed = 7) {
  const rng = createRng(seed);
  const counts = new Map<number, number>();
  for (let t = 0; t < n; t++) {
    const id = sampleToken(row, p, rng);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  for (const id of counts.keys()) expect(want.get(id) ?? 0, `token ${id} drawn outside the support`).toBeGreaterThan(0);
  // Pool bins expected under 5 draws, as chi-square needs.
  let stat = 0;
  let bins = 0;
  let restObs = 0;
  let restExp = 0;
  for (const [id, prob] of want) {
    const expd = prob * n;
    const obs = counts.get(id) ?? 0;
    if (expd < 5) {
      restObs += obs;
      restExp += expd;
      continue;
    }
    stat += (obs - expd) ** 2 / expd;
    bins++;
  }
  if (restExp > 0) {
    stat += (restObs - restExp) ** 2 / Math.max(restExp, 1e-9);
    bins++;
  }
  if (bins > 1) expect(stat).toBeLessThan(chi2Critical(bins - 1));
  return counts;
}

/** 12 logits: a three-way tie (ids 2, 7, 11) at the top-k 4 boundary, a two-way tie (ids 5, 9) at top-k 6. */
const ROW = Float32Array.from([0.3, 2.5, 1.2, -0.4, 3.1, 0.9, -2, 1.2, 0.1, 0.9, -1.1, 1.2]);

describe("sampler distribution", () => {
  const cases: [string, SamplingParams][] = [
    ["T=1, no truncation", { temperature: 1, top_p: 1, top_k: 0 }],
    ["T=0.7, top_p 0.9", { temperature: 0.7, top_p: 0.9, top_k: 0 }],
    ["T=1.3, top_p 0.8, top_k 6", { temperature: 1.3, top_p: 0.8, top_k: 6 }],
    ["T=0.5, top_k 4 (tied boundary)", { temperature: 0.5, top_p: 1, top_k: 4 }],
    ["T=2, top_k 8", { temperature: 2, top_p: 1, top_k: 8 }],
    ["top_k >= V is no top-k", { temperature: 1, top_p: 0.95, top_k: 40 }],
  ];
  for (const [name, p] of cases) {
    it(`matches the full-sort reference and samples it: ${name}`, () => {
      expectSampledFit(ROW, p, expectSameDistribution(ROW, p));
    });
  }

  it("samples a 300-id row with heavy ties (long enough for the quickselect paths) like the reference", () => {
    const rng = createRng(21);
    // Logits on a coarse grid: many ties, including at the top-k and nucleus boundaries.
    const row = Float32Array.from({ length: 300 }, () => Math.round(rng() * 24) / 4);
    for (const p of [
      { temperature: 0.8, top_p: 0.9, top_k: 0 },
      { temperature: 1, top_p: 1, top_k: 37 },
      { temperature: 0.6, top_p: 0.7, top_k: 120 },
    ]) {
      expectSampledFit(row, p, expectSameDistribution(row, p), 60_000);
    }
  });

  it("breaks a tie at the top-k boundary toward the lower id", () => {
    // Order: 4, 1, then the tie 2/7/11, so top_k 3 keeps id 2 and top_k 4 keeps 2 and 7.
    expect(samplingDistribution(ROW, { temperature: 1, top_p: 1, top_k: 3 }).ids).toEqual([1, 2, 4]);
    expect(samplingDistribution(ROW, { temperature: 1, top_p: 1, top_k: 4 }).ids).toEqual([1, 2, 4, 7]);
  });

  it("breaks a tie at the nucleus boundary toward the lower id", () => {
    const T = 1;
    const e = Array.from(ROW, (x) => Math.exp((x - 3.1) / T));
    const sum = e.reduce((a, b) => a + b, 0);
    // Mass of ids 4 and 1 plus one and a half of the tied weight: the boundary falls on the second of 2, 7, 11.
    const p: SamplingParams = { temperature: T, top_p: (e[4]! + e[1]! + 1.5 * e[2]!) / sum, top_k: 0 };
    const want = expectSameDistribution(ROW, p);
    expect([...want.keys()].sort((a, b) => a - b)).toEqual([1, 2, 4, 7]);
    expectSampledFit(ROW, p, want);
  });

  it("keeps exactly one token when the top one alone reaches top_p", () => {
    const row = Float32Array.from([0, 1, 6, 0.5, 1, 2, 0, 0]);
    const p: SamplingParams = { temperature: 1, top_p: 0.5, top_k: 0 };
    expect(samplingDistribution(row, p)).toEqual({ ids: [2], probs: [1] });
    const rng = createRng(3);
    for (let t = 0; t < 200; t++) expect(sampleToken(row, p, rng)).toBe(2);
    // On a flat row a tiny top_p keeps only the lowest id.
    const flat = new Float32Array(9).fill(0.25);
    expect(samplingDistribution(flat, { temperature: 1, top_p: 1e-6, top_k: 0 }).ids).toEqual([0]);
  });

  it("greedy (temperature 0 or top_k 1) takes the lowest id of a tied max and draws no randomness", () => {
    const row = Float32Array.from([1, 4, -2, 7, 0, 7, 3]);
    let calls = 0;
    const rng = () => {
      calls++;
      return 0.5;
    };
    expect(sampleToken(row, { temperature: 0, top_p: 1, top_k: 0 }, rng)).toBe(3);
    expect(sampleToken(row, { temperature: 1.5, top_p: 0.9, top_k: 1 }, rng)).toBe(3);
    expect(calls).toBe(0);
  });

  it("scales by temperature: probabilities are softmax(logits / T)", () => {
    for (const T of [0.25, 1, 1.9]) {
      const d = samplingDistribution(ROW, { temperature: T, top_p: 1, top_k: 0 });
      const e = Array.from(ROW, (x) => Math.exp(x / T));
      const sum = e.reduce((a, b) => a + b, 0);
      expect(d.ids).toEqual(Array.from(ROW.keys()));
      d.probs.forEach((q, i) => {
        expect(q).toBeCloseTo(e[i]! / sum, 12);
      });
    }
    // Lower temperature concentrates the draw on the best token.
    const top = (T: number) => {
      const p: SamplingParams = { temperature: T, top_p: 1, top_k: 0 };
      return expectSampledFit(ROW, p, naive(ROW, p)).get(4) ?? 0;
    };
    expect(top(0.3)).toBeGreaterThan(top(1));
  });

  it("takes one rng draw per sampled token and is reproducible by seed", () => {
    for (const p of [
      { temperature: 0.7, top_p: 1, top_k: 0 },
      { temperature: 0.7, top_p: 0.9, top_k: 0 },
      { temperature: 0.7, top_p: 0.9, top_k: 5 },
    ]) {
      const run = () => {
        const base = createRng(11);
        let calls = 0;
        const rng = () => {
          calls++;
          return base();
        };
        const out = Array.from({ length: 50 }, () => sampleToken(ROW, p, rng));
        return { out, calls };
      };
      const a = run();
      expect(a.calls).toBe(50);
      expect(run().out).toEqual(a.out);
    }
  });
});

describe("sampler on a 32000-id vocabulary", () => {
  /** Seeded normal logits; `step` > 0 rounds them to a grid so ties are common. */
  function randomRow(seed: number, scale: number, step = 0): Float32Array {
    const rng = createRng(seed);
    const row = new Float32Array(32000);
    for (let i = 0; i < row.length; i++) {
      const g = Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng()) * scale;
      row[i] = step > 0 ? Math.round(g / step) * step : g;
    }
    return row;
  }

  it("top_p 0.9 keeps the same nucleus, with the same probabilities, as the full sort", () => {
    for (let seed = 1; seed <= 4; seed++) {
      for (const [scale, step] of [
        [1, 0],
        [3, 0],
        [6, 0],
        [3, 0.25],
      ] as const) {
        const row = randomRow(seed * 100 + scale, scale, step);
        for (const p of [
          { temperature: 0.7, top_p: 0.9, top_k: 0 },
          { temperature: 1, top_p: 0.9, top_k: 0 },
          { temperature: 0.7, top_p: 0.9, top_k: 40 },
          { temperature: 1, top_p: 0.5, top_k: 2000 },
        ]) {
          expectSameDistribution(row, p);
        }
      }
    }
  });

  it("top_p < 1 on flat rows (most of the vocabulary in the nucleus) and with masked (-inf) ids", () => {
    for (let seed = 1; seed <= 3; seed++) {
      const flat = randomRow(seed, 0.5);
      const masked = randomRow(seed + 10, 1);
      for (let i = 0; i < masked.length; i += 3) masked[i] = -Infinity; // a constraint's mask
      // (An all-equal row is left out: its nucleus boundary is an exact rounding tie, 16000 × 1 vs 0.5 × 32000.)
      for (const row of [flat, masked]) {
        for (const top_p of [0.5, 0.9, 0.99]) expectSameDistribution(row, { temperature: 0.7, top_p, top_k: 0 });
      }
    }
  });

  it("draws on a 32000-id row fit the nucleus (chi-square over 20 equal-mass groups of ids)", () => {
    const row = randomRow(5, 1);
    for (const p of [
      { temperature: 0.7, top_p: 0.9, top_k: 0 },
      { temperature: 0.7, top_p: 1, top_k: 0 },
      { temperature: 1.5, top_p: 0.3, top_k: 0 },
    ]) {
      const want = naive(row, p);
      // Groups of ids in sampling order, each holding ~1/20 of the mass (so each expects ~n/20 draws).
      const group = new Map<number, number>();
      const expected: number[] = [];
      let acc = 0;
      for (const [id, prob] of [...want].sort((a, b) => b[1] - a[1] || a[0] - b[0])) {
        const g = Math.min(19, Math.floor(acc * 20));
        group.set(id, g);
        expected[g] = (expected[g] ?? 0) + prob;
        acc += prob;
      }
      // 200 draws expected per group: enough for chi-square, and each draw weighs a 32000-id row.
      const n = 4_000;
      const rng = createRng(3);
      const observed = expected.map(() => 0);
      for (let t = 0; t < n; t++) {
        const g = group.get(sampleToken(row, p, rng));
        expect(g, "drawn outside the nucleus").toBeDefined();
        observed[g!]!++;
      }
      const stat = expected.reduce((s, e, g) => s + (observed[g]! - e * n) ** 2 / (e * n), 0);
      expect(stat).toBeLessThan(chi2Critical(expected.length - 1));
    }
  });

  it("weights match Math.exp to 1e-14 relative; beyond exp(-128) of the max and masked ids weigh 0", () => {
    const row = Float32Array.from({ length: 4000 }, (_, i) => -i * 0.0371);
    row[17] = -Infinity;
    const w = new Float64Array(row.length);
    const bucket = new Uint16Array(row.length);
    const T = 0.7;
    weighAll(row, 0, 1 / T, w, bucket);
    for (let i = 0; i < row.length; i++) {
      const t = (0 - row[i]!) * (1 / T); // as weighAll forms it: the weight of the same t
      const want = t < 128 ? Math.exp(-t) : 0;
      expect(Math.abs(w[i]! - want), `id ${i}`).toBeLessThanOrEqual(1e-14 * want);
      if (i > 0 && row[i]! < row[i - 1]!) expect(bucket[i]!).toBeGreaterThanOrEqual(bucket[i - 1]!);
    }
  });

  it("top_p 1 draws from the whole vocabulary with softmax probabilities", () => {
    const row = randomRow(9, 2);
    expectSameDistribution(row, { temperature: 0.7, top_p: 1, top_k: 0 });
    expectSameDistribution(row, { temperature: 0.7, top_p: 1, top_k: 50 });
  });
});
