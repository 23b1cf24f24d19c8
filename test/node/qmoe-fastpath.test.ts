/**
 * Which ONNX Runtime QMoE CPU path our graphs take (gpu-backend/engine/qmoe-weights.ts). Timing-free:
 * "dynamic" mode declares the expert weights as graph inputs, so ORT does not prepack them and QMoE takes
 * another kernel (row-wise dequantize + SGEMM) than with constant weights (prepacked dequantize, or MLAS
 * int4 GEMM on AVX-512): the outputs differ bitwise, and both must match the float64 reference computed
 * from the dequantized weights.
 */
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { cpuHasMlasQ4Gemm, withDynamicQMoeWeights } from "../../gpu-backend/engine/qmoe-weights";
import { loadModelRunner } from "../../gpu-backend/engine/model-runner";
import { DataType, encodeModel } from "../../scripts/model-builder/onnx-proto";
import { dequantizeRow, quantizeRow } from "../../scripts/model-builder/quantize";

const H = 256;
const I = 512;
const E = 4;
const M = 3;
const BS = 32;

let seed = 12345;
const rand = (): number => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return (seed / 4294967296 - 0.5) * 0.1;
};
function quant(rows: number, cols: number): { q: Uint8Array; s: Float32Array } {
  const q = new Uint8Array((rows * cols) / 2);
  const s = new Float32Array((rows * cols) / BS);
  const row = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) row[c] = rand();
    quantizeRow(row, 0, cols, BS, q, (r * cols) / 2, s, (r * cols) / BS);
  }
  return { q, s };
}
const fc1 = quant(E * 2 * I, H);
const fc2 = quant(E * H, I);
const x = Float32Array.from({ length: M * H }, () => rand() * 20);
const logits = Float32Array.from({ length: M * E }, () => rand() * 40);

function reference(): Float64Array {
  const out = new Float64Array(M * H);
  for (let t = 0; t < M; t++) {
    const top = Array.from(logits.subarray(t * E, (t + 1) * E), (v, e) => [v, e])
      .sort((a, b) => b[0] - a[0])
      .slice(0, 2);
    const w = top.map(([v]) => Math.exp(v - top[0][0]));
    const sum = w[0] + w[1];
    top.forEach(([, e], j) => {
      const act = new Float64Array(I);
      for (let i = 0; i < I; i++) {
        const row = (r: number) => dequantizeRow(fc1.q, (r * H) / 2, fc1.s, (r * H) / BS, H, BS);
        const g = row(e * 2 * I + 2 * i).reduce((a, v, c) => a + v * x[t * H + c], 0);
        const u = row(e * 2 * I + 2 * i + 1).reduce((a, v, c) => a + v * x[t * H + c], 0);
        act[i] = (g / (1 + Math.exp(-g))) * u;
      }
      for (let h = 0; h < H; h++) {
        const row = dequantizeRow(fc2.q, ((e * H + h) * I) / 2, fc2.s, ((e * H + h) * I) / BS, I, BS);
        out[t * H + h] += (w[j] / sum) * row.reduce((a, v, i) => a + v * act[i], 0);
      }
    });
  }
  return out;
}

// One QMoE node laid out like scripts/model-builder/graph.ts, weights in an external data file.
const dir = mkdtempSync(path.join(tmpdir(), "qmoe-fastpath-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const bytes = (f: Float32Array) => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
const weights = [
  { name: "fc1_w", dataType: DataType.UINT8, dims: [E, 2 * I, H / 2], data: fc1.q },
  { name: "fc1_s", dataType: DataType.FLOAT, dims: [E, 2 * I, H / BS], data: bytes(fc1.s) },
  { name: "fc2_w", dataType: DataType.UINT8, dims: [E, H, I / 2], data: fc2.q },
  { name: "fc2_s", dataType: DataType.FLOAT, dims: [E, H, I / BS], data: bytes(fc2.s) },
];
let offset = 0;
const initializers = weights.map((w) => {
  const t = { name: w.name, dataType: w.dataType, dims: w.dims, external: { location: "w.data", offset, length: w.data.length } };
  offset += w.data.length;
  return t;
});
writeFileSync(path.join(dir, "w.data"), Buffer.concat(weights.map((w) => w.data)));
const modelPath = path.join(dir, "model.onnx");
writeFileSync(
  modelPath,
  encodeModel({
    irVersion: 8,
    opsets: [
      { domain: "", version: 17 },
      { domain: "com.microsoft", version: 1 },
    ],
    producerName: "test",
    producerVersion: "0",
    graph: {
      name: "qmoe",
      nodes: [
        {
          op: "QMoE",
          domain: "com.microsoft",
          name: "qmoe",
          inputs: ["x", "logits", "fc1_w", "fc1_s", "", "fc2_w", "fc2_s"],
          outputs: ["y"],
          attrs: { k: 2, activation_type: "swiglu", normalize_routing_weights: 1, swiglu_fusion: 1, expert_weight_bits: 4, block_size: BS },
        },
      ],
      initializers,
      inputs: [
        { name: "x", elemType: DataType.FLOAT, shape: ["m", H] },
        { name: "logits", elemType: DataType.FLOAT, shape: ["m", E] },
      ],
      outputs: [{ name: "y", elemType: DataType.FLOAT, shape: ["m", H] }],
    },
  }),
);

const feeds = () => ({ x: new ort.Tensor("float32", x, [M, H]), logits: new ort.Tensor("float32", logits, [M, E]) });
const opts = (extra: Record<string, string> = {}): ort.InferenceSession.SessionOptions => ({
  executionProviders: ["cpu"],
  intraOpNumThreads: 1,
  logSeverityLevel: 3,
  extra: { session: extra },
});
function maxRelErr(y: Float32Array, ref: Float64Array): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < y.length; i++) {
    err = Math.max(err, Math.abs(y[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return err / scale;
}

describe("QMoE weight modes", () => {
  const ref = reference();

  it("reads the MLAS Q4 GEMM CPU requirement (AVX512 F/DQ/BW/VL) from cpuinfo flags", () => {
    expect(cpuHasMlasQ4Gemm("flags\t\t: fpu sse2 avx avx2 fma\n")).toBe(false);
    expect(cpuHasMlasQ4Gemm("flags\t: avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni\n")).toBe(true);
    expect(cpuHasMlasQ4Gemm("flags\t: avx2 avx512f\n")).toBe(false);
    expect(cpuHasMlasQ4Gemm("")).toBe(false);
  });

  it("constant and graph-input weights run different kernels, both exact against the reference", async () => {
    const constant = await ort.InferenceSession.create(modelPath, opts());
    const yConst = (await constant.run(feeds())).y.data as Float32Array;
    await constant.release();
    const patched = withDynamicQMoeWeights(readFileSync(modelPath));
    expect(patched).not.toBeNull();
    const dynamic = await ort.InferenceSession.create(patched!, opts({ model_external_initializers_file_folder_path: dir }));
    const yDyn = (await dynamic.run(feeds())).y.data as Float32Array;
    await dynamic.release();

    expect(maxRelErr(yConst, ref)).toBeLessThan(1e-4);
    expect(maxRelErr(yDyn, ref)).toBeLessThan(1e-4);
    // Same maths, different summation order: proof that the non-prepacked kernel ran.
    const bits = (y: Float32Array) => new Uint32Array(y.buffer, y.byteOffset, y.length);
    expect(Buffer.from(bits(yConst).buffer).equals(Buffer.from(bits(yDyn).buffer))).toBe(false);
  });

  it("leaves graphs without QMoE alone", () => {
    const plain = encodeModel({
      irVersion: 8,
      opsets: [{ domain: "", version: 17 }],
      producerName: "test",
      producerVersion: "0",
      graph: {
        name: "id",
        nodes: [{ op: "Identity", name: "id", inputs: ["a"], outputs: ["b"] }],
        initializers: [],
        inputs: [{ name: "a", elemType: DataType.FLOAT, shape: [1] }],
        outputs: [{ name: "b", elemType: DataType.FLOAT, shape: [1] }],
      },
    });
    expect(withDynamicQMoeWeights(plain)).toBeNull();
  });

  it("the runner's two modes give the same logits on a dev MoE model", async () => {
    const modelDir = path.resolve(import.meta.dirname, "../../models/dev/small");
    const ids = [1, 5, 9, 14, 3];
    const out: Float32Array[] = [];
    for (const mode of ["prepacked", "dynamic"] as const) {
      const r = await loadModelRunner(modelDir, { threads: 1, qmoeWeights: mode });
      expect(r.manifest.num_experts ?? 0).toBeGreaterThan(0);
      out.push((await r.forwardAll(ids)).logits);
      await r.release();
    }
    const scale = out[0].reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    const diff = out[0].reduce((a, v, i) => Math.max(a, Math.abs(v - out[1][i])), 0);
    expect(diff).toBeLessThanOrEqual(1e-4 * scale);
  });
});
