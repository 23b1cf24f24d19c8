/**
 * npm run bench:sampler -- [--rounds 7] [--json]
 * The sampler's cost per logits row of 32000 ids (seeded rows of spread 2, as flat as a random model's), in
 * microseconds: a whole draw at temperature 0.7 with top_p 0.9 and with top_p 1, argmax (greedy's draw), and
 * the two passes over every id that run in WebAssembly (max and weights: sampler-wasm/) against the same
 * passes in JavaScript (sampler-weights.ts's weighAll, the reference they are bit-identical to). The two
 * sides alternate each round; each figure is the median over rounds of the mean of 200 rows.
 */
import { RowKernels } from "../../gpu-backend/engine/sampler-wasm";
import { argmax, createRng, sampleToken } from "../../gpu-backend/engine/sampler";
import { weighAll } from "../../gpu-backend/engine/sampler-weights";
import { mulberry32 } from "../../gpu-backend/engine/rng";
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
if (values.json) console.log(JSON.stringify({ us_per_row: result, passes_js_over_wasm: ratio, rounds }));
else {
  for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(16)} ${v.toFixed(1)} us/row`);
  console.log(
    `max + weights over every id: JavaScript / WebAssembly ${ratio.toFixed(2)}x (median of ${rounds} rounds)`,
  );
}
if (sink === Number.MIN_VALUE) console.log(""); // keeps the work observable
