/**
 * A constrained draw visits only the ids its mask allows (Constraint.allowedIds + sampleAmong) instead of
 * writing -Infinity over the rest of the row and drawing from all of it. Pinned against that dense path:
 * the same ids are allowed, and with the same seed the same token is drawn and the rng advanced alike, for
 * greedy, top_p < 1 and top_p 1, on random subsets and on real schema masks with stop ids.
 */
import { describe, expect, it } from "vitest";
import { compileResponseFormat, mistralVocab } from "../../gpu-backend/engine/constraint/index";
import { Constraint } from "../../gpu-backend/engine/constraint/token-mask";
import { mulberry32 } from "../../gpu-backend/engine/rng";
import { createRng, type SamplingParams, sampleAmong, sampleToken } from "../../gpu-backend/engine/sampler";
import { TEST_SCHEMAS } from "./helpers/json-schema-check";
import { TINY_MANIFEST, tokenIdOf } from "./helpers/constraint-fixtures";

const V = 32000;
const PARAMS: SamplingParams[] = [
  { temperature: 0, top_p: 1, top_k: 0 },
  { temperature: 0.7, top_p: 0.9, top_k: 0 },
  { temperature: 1, top_p: 1, top_k: 0 },
  { temperature: 0.3, top_p: 0.5, top_k: 0 },
  { temperature: 0.7, top_p: 0.9, top_k: 1 },
];

const manifest = TINY_MANIFEST;

/** The dense path: the row with every unlisted id at -Infinity, drawn from whole. */
function dense(row: Float32Array, among: Int32Array, n: number, p: SamplingParams, rng: () => number): number {
  const masked = new Float32Array(row.length).fill(-Infinity);
  for (let j = 0; j < n; j++) masked[among[j]!] = row[among[j]!]!;
  return sampleToken(masked, p, rng);
}

describe("drawing among the allowed ids", () => {
  it("draws what the masked row draws, with the same rng use, on random subsets", () => {
    const rnd = mulberry32(11);
    const among = new Int32Array(V);
    for (let t = 0; t < 60; t++) {
      const spread = [0.05, 2, 30][t % 3]!;
      const row = Float32Array.from({ length: V }, () => spread * (rnd() + rnd() + rnd() - 1.5));
      for (let i = 0; i < V; i += 97) row[i] = row[(i * 7) % V]!; // ties
      const density = [0.0005, 0.01, 0.2, 0.5][t % 4]!;
      let n = 0;
      for (let i = 0; i < V; i++) if (rnd() < density) among[n++] = i;
      if (n === 0) among[n++] = 5;
      if (t % 5 === 0) row[among[0]!] = Number.NaN; // the dense draw falls back to greedy; so must this one
      if (t % 7 === 0) row[among[n - 1]!] = Number.POSITIVE_INFINITY;
      for (const p of PARAMS)
        for (const seed of [1, 2, 3]) {
          const a = createRng(seed + t);
          const b = createRng(seed + t);
          const want = dense(row, among, n, p, a);
          const got = sampleAmong(row, among, n, p, b);
          expect(got, `case ${t} n=${n} ${JSON.stringify(p)} seed ${seed}`).toBe(want);
          expect(b()).toBe(a());
        }
    }
  });

  it("declines (no draw, no rng use) where the dense draw differs: top_k > 1, or nothing above -Infinity", () => {
    const row = new Float32Array(V).fill(-Infinity);
    const among = Int32Array.of(3, 9, 12);
    const rng = createRng(4);
    const twin = createRng(4);
    expect(sampleAmong(row, among, 3, { temperature: 0.7, top_p: 0.9, top_k: 0 }, rng)).toBe(-1);
    row[9] = 1;
    expect(sampleAmong(row, among, 3, { temperature: 0.7, top_p: 0.9, top_k: 5 }, rng)).toBe(-1);
    expect(rng()).toBe(twin());
    expect(sampleAmong(row, among, 3, { temperature: 0.7, top_p: 0.9, top_k: 0 }, rng)).toBe(9);
  });

  it("allowedIds lists exactly the ids apply() leaves unmasked, stop ids included only when complete", () => {
    const vocab = mistralVocab(2);
    const rng = createRng(21);
    const out = new Int32Array(V);
    const rf = { type: "json_schema" as const, schema: TEST_SCHEMAS.flat };
    let sawComplete = false;
    for (let d = 0; d < 6; d++) {
      // Stop ids: one the grammar may allow inside a string, one listed twice, one it never allows.
      const c = new Constraint(compileResponseFormat(rf, manifest), [13, 29871, 29871, 1]);
      for (let i = 0; i < 200; i++) {
        const row = Float32Array.from({ length: V }, (_, j) => rng() * 4 - (vocab.bytes(j)?.length ?? 9));
        const n = c.allowedIds(out, V);
        const masked = row.slice();
        expect(c.apply(masked)).toBe(true);
        const want = [...masked.keys()].filter((j) => masked[j]! > -Infinity);
        expect(Array.from(out.subarray(0, n))).toEqual(want);
        if (c.complete) {
          sawComplete = true;
          expect(want).toContain(29871);
          break;
        }
        const tok = sampleAmong(row, out, n, { temperature: 1, top_p: 1, top_k: 0 }, rng);
        if (tok === 2) break;
        c.accept(tok);
      }
    }
    expect(sawComplete).toBe(true);
  });

  it("declines a mask with more ids than the scratch holds (the caller masks the row)", () => {
    const c = new Constraint(compileResponseFormat({ type: "json_object" }, manifest));
    const vocab = mistralVocab(2);
    const idOf = (text: string) => tokenIdOf(vocab, text);
    c.accept(idOf("{"));
    c.accept(idOf('"')); // inside a key: most of the vocabulary is allowed
    expect(c.allowedIds(new Int32Array(16), V)).toBe(-1);
    expect(c.allowedIds(new Int32Array(V), V)).toBeGreaterThan(16);
  });
});
