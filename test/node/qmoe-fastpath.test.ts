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
import { qmoeModel, qmoeReference, randomQuantMatrix, type QMoEDims } from "../../scripts/reference/qmoe";

const dims: QMoEDims = { hidden: 256, inter: 512, experts: 4, topK: 2, blockSize: 32 };
const { hidden: H, experts: E } = dims;
const M = 3;

let seed = 12345;
const rand = (): number => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return (seed / 4294967296 - 0.5) * 0.1;
};
const fc1 = randomQuantMatrix(E * 2 * dims.inter, H, dims.blockSize, rand);
const fc2 = randomQuantMatrix(E * H, dims.inter, dims.blockSize, rand);
const x = Float32Array.from({ length: M * H }, () => rand() * 20);
const logits = Float32Array.from({ length: M * E }, () => rand() * 40);
const reference = () => qmoeReference(dims, x, logits, fc1, fc2);

// One QMoE node laid out like scripts/model-builder/graph.ts, weights in an external data file.
const dir = mkdtempSync(path.join(tmpdir(), "qmoe-fastpath-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const model = qmoeModel(dims, fc1, fc2, { externalFile: "w.data" });
writeFileSync(path.join(dir, "w.data"), model.data!);
const modelPath = path.join(dir, "model.onnx");
writeFileSync(modelPath, model.proto);

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
    const dynamic = await ort.InferenceSession.create(
      patched!,
      opts({ model_external_initializers_file_folder_path: dir }),
    );
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
