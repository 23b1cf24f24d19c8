/**
 * QMoE micro-benchmark: one com.microsoft.QMoE node (int4, block 32, swiglu_fusion=1, no zero points),
 * decode M=1 by default, timed per call on the native CPU EP and checked against a float64 reference
 * computed from the dequantized weights. Used to find which QMoE path ONNX Runtime takes (DESIGN.md §3).
 *
 *   npx tsx scripts/bench/qmoe-micro.ts [--hidden 1024] [--inter 3584] [--experts 8] [--tokens 1]
 *     [--threads 2] [--iters 30] [--external] [--no-prepack] [--overridable] [--accuracy-level N]
 *     [--opt all|disabled] [--json]
 *
 * ORT reads ORT_USE_MLAS_Q4_GEMM_MOE when the kernel is created, so set it in the environment
 * (or on process.env before the session exists).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { DataType, encodeModel, type NodeDef, type TensorDef } from "../model-builder/onnx-proto";
import { dequantizeRow, quantizeRow } from "../model-builder/quantize";

const { values: a } = parseArgs({
  options: {
    hidden: { type: "string", default: "1024" },
    inter: { type: "string", default: "3584" },
    experts: { type: "string", default: "8" },
    tokens: { type: "string", default: "1" },
    threads: { type: "string", default: "2" },
    iters: { type: "string", default: "30" },
    external: { type: "boolean", default: false },
    "no-prepack": { type: "boolean", default: false },
    overridable: { type: "boolean", default: false },
    "accuracy-level": { type: "string" },
    opt: { type: "string", default: "all" },
    json: { type: "boolean", default: false },
  },
});
const H = Number(a.hidden);
const I = Number(a.inter);
const E = Number(a.experts);
const M = Number(a.tokens);
const BS = 32;
const K = 2;

// Deterministic pseudo-random weights (xorshift), roughly N(0, 0.02)-sized.
let seed = 0x9e3779b9;
const rand = (): number => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return ((seed >>> 0) / 4294967296 - 0.5) * 0.08;
};

function quantMatrix(rows: number, cols: number): { q: Uint8Array; s: Float32Array } {
  const q = new Uint8Array((rows * cols) / 2);
  const s = new Float32Array((rows * cols) / BS);
  const row = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) row[c] = rand();
    quantizeRow(row, 0, cols, BS, q, (r * cols) / 2, s, (r * cols) / BS);
  }
  return { q, s };
}

const fc1 = quantMatrix(E * 2 * I, H);
const fc2 = quantMatrix(E * H, I);
const x = Float32Array.from({ length: M * H }, () => rand() * 25);
const logits = Float32Array.from({ length: M * E }, () => rand() * 50);

/** Float64 reference: softmax over top-2 logits, silu(gate)*up with interleaved fc1 rows, fc2. */
function reference(): Float64Array {
  const out = new Float64Array(M * H);
  for (let t = 0; t < M; t++) {
    const lg = Array.from(logits.subarray(t * E, (t + 1) * E));
    const order = lg.map((v, i) => [v, i]).sort((p, q) => q[0] - p[0]).slice(0, K);
    const ex = order.map(([v]) => Math.exp(v - order[0][0]));
    const sum = ex.reduce((p, q) => p + q, 0);
    const xt = x.subarray(t * H, (t + 1) * H);
    order.forEach(([, e], j) => {
      const act = new Float64Array(I);
      for (let i = 0; i < I; i++) {
        const gRow = dequantizeRow(fc1.q, ((e * 2 * I + 2 * i) * H) / 2, fc1.s, ((e * 2 * I + 2 * i) * H) / BS, H, BS);
        const uRow = dequantizeRow(fc1.q, ((e * 2 * I + 2 * i + 1) * H) / 2, fc1.s, ((e * 2 * I + 2 * i + 1) * H) / BS, H, BS);
        let g = 0;
        let u = 0;
        for (let c = 0; c < H; c++) {
          g += gRow[c] * xt[c];
          u += uRow[c] * xt[c];
        }
        act[i] = (g / (1 + Math.exp(-g))) * u;
      }
      for (let h = 0; h < H; h++) {
        const row = dequantizeRow(fc2.q, ((e * H + h) * I) / 2, fc2.s, ((e * H + h) * I) / BS, I, BS);
        let acc = 0;
        for (let i = 0; i < I; i++) acc += row[i] * act[i];
        out[t * H + h] += (ex[j] / sum) * acc;
      }
    });
  }
  return out;
}

const dir = mkdtempSync(path.join(tmpdir(), "qmoe-micro-"));
const u8 = (f: Float32Array): Uint8Array => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
const tensors: { name: string; dataType: DataType; dims: number[]; bytes: Uint8Array }[] = [
  { name: "fc1_w", dataType: DataType.UINT8, dims: [E, 2 * I, H / 2], bytes: fc1.q },
  { name: "fc1_s", dataType: DataType.FLOAT, dims: [E, 2 * I, H / BS], bytes: u8(fc1.s) },
  { name: "fc2_w", dataType: DataType.UINT8, dims: [E, H, I / 2], bytes: fc2.q },
  { name: "fc2_s", dataType: DataType.FLOAT, dims: [E, H, I / BS], bytes: u8(fc2.s) },
];
const initializers: TensorDef[] = [];
const dataChunks: Uint8Array[] = [];
let offset = 0;
for (const t of tensors) {
  if (a.external) {
    initializers.push({ name: t.name, dataType: t.dataType, dims: t.dims, external: { location: "w.data", offset, length: t.bytes.length } });
    dataChunks.push(t.bytes);
    offset += t.bytes.length;
  } else {
    initializers.push({ name: t.name, dataType: t.dataType, dims: t.dims, raw: t.bytes });
  }
}
const attrs: NodeDef["attrs"] = {
  k: K,
  activation_type: "swiglu",
  normalize_routing_weights: 1,
  swiglu_fusion: 1,
  expert_weight_bits: 4,
  block_size: BS,
};
if (a["accuracy-level"] !== undefined) attrs.accuracy_level = Number(a["accuracy-level"]);
const proto = encodeModel({
  irVersion: 8,
  opsets: [
    { domain: "", version: 17 },
    { domain: "com.microsoft", version: 1 },
  ],
  producerName: "qmoe-micro",
  producerVersion: "0",
  graph: {
    name: "qmoe",
    nodes: [
      { op: "QMoE", domain: "com.microsoft", name: "qmoe", inputs: ["x", "logits", "fc1_w", "fc1_s", "", "fc2_w", "fc2_s"], outputs: ["y"], attrs },
    ],
    initializers,
    inputs: [
      { name: "x", elemType: DataType.FLOAT, shape: ["m", H] },
      { name: "logits", elemType: DataType.FLOAT, shape: ["m", E] },
      // Initializers that are also graph inputs are overridable, hence not constant: no PrePack.
      ...(a.overridable ? tensors.map((t) => ({ name: t.name, elemType: t.dataType, shape: t.dims })) : []),
    ],
    outputs: [{ name: "y", elemType: DataType.FLOAT, shape: ["m", H] }],
  },
});
const modelPath = path.join(dir, "model.onnx");
writeFileSync(modelPath, proto);
if (a.external) writeFileSync(path.join(dir, "w.data"), Buffer.concat(dataChunks));

const t0 = performance.now();
const session = await ort.InferenceSession.create(modelPath, {
  executionProviders: ["cpu"],
  graphOptimizationLevel: a.opt as "all" | "disabled",
  intraOpNumThreads: Number(a.threads),
  interOpNumThreads: 1,
  extra: { session: a["no-prepack"] ? { disable_prepacking: "1" } : {} },
});
const loadMs = performance.now() - t0;
const feeds = { x: new ort.Tensor("float32", x, [M, H]), logits: new ort.Tensor("float32", logits, [M, E]) };
let y = (await session.run(feeds)).y.data as Float32Array;
const times: number[] = [];
for (let i = 0; i < Number(a.iters); i++) {
  const s = performance.now();
  y = (await session.run(feeds)).y.data as Float32Array;
  times.push(performance.now() - s);
}
await session.release();
rmSync(dir, { recursive: true, force: true });

const ref = reference();
let maxErr = 0;
let maxRef = 0;
let hash = 0;
const yb = new Uint32Array(y.buffer, y.byteOffset, y.length);
for (let i = 0; i < y.length; i++) {
  maxErr = Math.max(maxErr, Math.abs(y[i] - ref[i]));
  maxRef = Math.max(maxRef, Math.abs(ref[i]));
  hash = (Math.imul(hash, 31) + yb[i]) | 0;
}
times.sort((p, q) => p - q);
const result = {
  env: process.env.ORT_USE_MLAS_Q4_GEMM_MOE ?? null,
  external: a.external,
  prepack: !a["no-prepack"],
  overridable: a.overridable,
  accuracyLevel: a["accuracy-level"] ?? null,
  opt: a.opt,
  H,
  I,
  E,
  M,
  threads: Number(a.threads),
  loadMs: Math.round(loadMs),
  medianMs: Number(times[times.length >> 1].toFixed(2)),
  minMs: Number(times[0].toFixed(2)),
  maxAbsErr: maxErr,
  relErr: maxErr / maxRef,
  outputHash: (hash >>> 0).toString(16),
};
console.log(a.json ? JSON.stringify(result) : result);
