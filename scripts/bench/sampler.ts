/**
 * npm run bench:sampler -- [--rounds 7] [--json]
 * The sampler's cost per logits row of 32000 ids (seeded rows of spread 2, as flat as a random model's), in
 * microseconds: a whole draw at temperature 0.7 with top_p 0.9 and with top_p 1, argmax (greedy's draw), and
 * the two passes over every id that run in WebAssembly (max and weights: sampler-wasm/) against the same
 * passes in JavaScript (sampler-weights.ts's weighAll, the reference they are bit-identical to); and a
 * constrained draw at two states of a small schema (after `{"`: a key's few allowed ids; inside a string
 * value: most of the vocabulary), masking the row then drawing (`masked_*`) against the engine's way
 * (`among_*`: among the allowed ids, Constraint.allowedIds + sampleAmong, when at most 16384; else masked).
 * Both constrained sides copy the row first (the masked side writes into it). The cases alternate each round; each figure is the median over rounds
 * of the mean of 200 rows.
 */
import { RowKernels } from "../../gpu-backend/engine/sampler-wasm";
import { argmax, createRng, sampleToken } from "../../gpu-backend/engine/sampler";
import { weighAll } from "../../gpu-backend/engine/sampler-weights";
import { mulberry32 } from "../../gpu-backend/engine/rng";
import type { ModelManifest } from "../../contract/model-manifest";
import { compileResponseFormat, mistralVocab } from "../../gpu-backend/engine/constraint/index";
import { Constraint } from "../../gpu-backend/engine/constraint/token-mask";
import { sampleAmong } from "../../gpu-backend/engine/sampler";
import { parseCli } from "../lib/cli";

const { values } = parseCli("bench:sampler", process.argv.slice(2), {
  usage: "usage: npm run bench:sampler -- [--rounds 7] [--json]",
  options: { rounds: { type: "string", default: "7" }, json: { type: "boolean", default: false } },
});
const rounds = Math.max(1, Number(values.rounds));
const V = 32000;
const ROWS = 16;
const PER_ROUND = 200;
const rnd = mulberry32(12345);
const rows = Array.from({ length: ROWS }, () =>
  Float32Array.from({ length: V }, () => 2 * (rnd() + rnd() + rnd() - 1.5)),
);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

const kernels = new RowKernels();

// Two constraint states: just inside a key (few ids allowed) and inside a string value (most allowed).
const manifest = {
  name: "bench",
  tokenizer: { kind: "mistral-v1-sentencepiece", vocab_size: V },
  vocab_size: V,
  eos_token_id: 2,
} as ModelManifest;
const vocab = mistralVocab(2);
const idOf = (text: string) => {
  for (let id = 3; id < V; id++) if (Buffer.from(vocab.bytes(id) ?? []).toString() === text) return id;
  throw new Error(`no token ${JSON.stringify(text)}`);
};
const schema = {
  type: "object",
  properties: { city: { type: "string" }, unit: { enum: ["celsius", "fahrenheit"] } },
  required: ["city", "unit"],
  additionalProperties: false,
};
const constraintAt = (text: string[]) => {
  const c = new Constraint(compileResponseFormat({ type: "json_schema", schema }, manifest));
  for (const t of text) c.accept(idOf(t));
  return c;
};
const inKey = constraintAt(["{", '"']);
const inValue = constraintAt(["{", '"', "city", '"', ":", ' "']);
const copy = new Float32Array(V);
const allowed = new Int32Array(16384);
const sampledP = { temperature: 0.7, top_p: 0.9, top_k: 0 };
const masked = (c: Constraint) => (row: Float32Array) => {
  copy.set(row);
  c.apply(copy);
  sink += sampleToken(copy, sampledP, rng);
};
// As token-flow.ts does: among the allowed ids when they fit, else mask the row.
const among = (c: Constraint) => (row: Float32Array) => {
  copy.set(row);
  const n = c.allowedIds(allowed, V);
  const id = n > 0 ? sampleAmong(copy, allowed, n, sampledP, rng) : -1;
  if (id >= 0) sink += id;
  else {
    c.apply(copy);
    sink += sampleToken(copy, sampledP, rng);
  }
};
const w = new Float64Array(V);
const bucket = new Uint16Array(V);
const rng = createRng(1);
let sink = 0;
const cases: Record<string, (row: Float32Array) => void> = {
  draw_top_p_0_9: (row) => {
    sink += sampleToken(row, { temperature: 0.7, top_p: 0.9, top_k: 0 }, rng);
  },
  draw_top_p_1: (row) => {
    sink += sampleToken(row, { temperature: 0.7, top_p: 1, top_k: 0 }, rng);
  },
  argmax: (row) => {
    sink += argmax(row);
  },
  passes_wasm: (row) => {
    sink += kernels.weigh(kernels.load(row), 1 / 0.7);
  },
  masked_key: masked(inKey),
  among_key: among(inKey),
  masked_value: masked(inValue),
  among_value: among(inValue),
  passes_js: (row) => {
    let max = -Infinity;
    for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
    sink += weighAll(row, max, 1 / 0.7, w, bucket);
  },
};
const us: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (let r = 0; r < rounds + 1; r++) {
  const order = r % 2 ? Object.keys(cases).reverse() : Object.keys(cases);
  for (const name of order) {
    const t = performance.now();
    for (let i = 0; i < PER_ROUND; i++) cases[name]!(rows[i % ROWS]!);
    if (r > 0) us[name]!.push(((performance.now() - t) * 1000) / PER_ROUND); // round 0 warms the JIT
  }
}
const result = Object.fromEntries(Object.entries(us).map(([k, v]) => [k, median(v)]));
const ratio = result.passes_js! / result.passes_wasm!;
const allowedCounts = { key: inKey.allowedIds(allowed, V), value: inValue.allowedIds(allowed, V) };
if (values.json)
  console.log(JSON.stringify({ us_per_row: result, passes_js_over_wasm: ratio, allowed: allowedCounts, rounds }));
else {
  for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(16)} ${v.toFixed(1)} us/row`);
  console.log(
    `allowed ids: ${allowedCounts.key} in the key; in the string value ${allowedCounts.value < 0 ? "more than 16384 (the row is masked)" : allowedCounts.value}`,
  );
  console.log(
    `max + weights over every id: JavaScript / WebAssembly ${ratio.toFixed(2)}x (median of ${rounds} rounds)`,
  );
}
if (sink === Number.MIN_VALUE) console.log(""); // keeps the work observable
