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
import { qmoeModel, qmoeReference, randomQuantMatrix, type QMoEDims } from "../reference/qmoe";

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

const dims: QMoEDims = { hidden: H, inter: I, experts: E, topK: K, blockSize: BS };
const fc1 = randomQuantMatrix(E * 2 * I, H, BS, rand);
const fc2 = randomQuantMatrix(E * H, I, BS, rand);
const x = Float32Array.from({ length: M * H }, () => rand() * 25);
const logits = Float32Array.from({ length: M * E }, () => rand() * 50);
const reference = () => qmoeReference(dims, x, logits, fc1, fc2);

const dir = mkdtempSync(path.join(tmpdir(), "qmoe-micro-"));
const model = qmoeModel(dims, fc1, fc2, {
  externalFile: a.external ? "w.data" : undefined,
  overridable: a.overridable,
  accuracyLevel: a["accuracy-level"] === undefined ? undefined : Number(a["accuracy-level"]),
});
const modelPath = path.join(dir, "model.onnx");
writeFileSync(modelPath, model.proto);
if (model.data) writeFileSync(path.join(dir, "w.data"), model.data);

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
