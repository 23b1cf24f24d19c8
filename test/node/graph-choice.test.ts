/** Which graph the runner picks (gpu-backend/engine/graph-choice.ts), and the error for a stale build. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { ModelManifest } from "../../contract/model-manifest";
import { autoForm, needsRowPadding, parseGraphChoice, resolveGraph } from "../../gpu-backend/engine/graph-choice";
import { loadModelRunner } from "../../gpu-backend/engine/model-runner";

const moe = {
  name: "m",
  num_experts: 8,
  graphs: { fused: "model.onnx", sliced: "model.sliced.onnx", batch_invariant: "model.batch-invariant.onnx" },
} as unknown as ModelManifest;
const noPadded = {
  name: "p",
  num_experts: 8,
  graphs: { fused: "model.onnx", sliced: "model.sliced.onnx" },
} as unknown as ModelManifest;
const old = { name: "old", num_experts: 8 } as unknown as ModelManifest;
const dense = {
  name: "d",
  num_experts: 0,
  graphs: { fused: "model.onnx", sliced: "model.onnx" },
} as unknown as ModelManifest;

describe("graph choice", () => {
  it("auto: fused on GPU EPs, sliced on CPU (with or without AVX-512) and on WASM", () => {
    expect(autoForm("webgpu").form).toBe("fused");
    expect(autoForm("cuda").form).toBe("fused");
    expect(autoForm("cpu", false).form).toBe("sliced");
    expect(autoForm("cpu", true).form).toBe("sliced");
    expect(autoForm("wasm").form).toBe("sliced");
    expect(resolveGraph(moe, "auto", "cpu")).toMatchObject({ form: "sliced", file: "model.sliced.onnx" });
    expect(resolveGraph(moe, "auto", "webgpu")).toMatchObject({ form: "fused", file: "model.onnx" });
  });

  it("an explicit choice wins; dense models have one graph", () => {
    expect(resolveGraph(moe, "fused", "cpu")).toMatchObject({ form: "fused", file: "model.onnx" });
    expect(resolveGraph(dense, "sliced", "cpu").file).toBe("model.onnx");
  });

  it("--graph sliced on a model built before the sliced graph says to rebuild; auto falls back to fused", () => {
    expect(() => resolveGraph(old, "sliced", "cpu")).toThrow(/built before the sliced graph existed: rebuild it/);
    expect(resolveGraph(old, "auto", "cpu")).toMatchObject({ form: "fused", file: "model.onnx" });
  });

  it("batch invariance: the row-padded graph where MLAS has a lone-row kernel (no AVX-512), or when asked", () => {
    expect(needsRowPadding(false)).toBe(true);
    expect(needsRowPadding(true)).toBe(false);
    expect(resolveGraph(moe, "auto", "cpu", true)).toMatchObject({
      form: "sliced",
      file: "model.batch-invariant.onnx",
      batchInvariant: true,
    });
    expect(resolveGraph(moe, "auto", "cpu", false)).toMatchObject({ file: "model.sliced.onnx" });
    expect(resolveGraph(moe, "auto", "webgpu", "auto")).toMatchObject({ file: "model.onnx", batchInvariant: false });
    expect(resolveGraph(moe, "auto", "cpu", "auto").file).toBe(
      needsRowPadding() ? "model.batch-invariant.onnx" : "model.sliced.onnx",
    );
    expect(resolveGraph(moe, "auto", "cpu", "auto").batchInvariant).toBe(true);
    expect(() => resolveGraph(moe, "fused", "cpu", true)).toThrow(/needs the sliced graph/);
    expect(() => resolveGraph(noPadded, "auto", "cpu", true)).toThrow(
      /before the batch-invariant graph existed: rebuild it/,
    );
  });

  it("bad --graph values are refused by name", () => {
    expect(parseGraphChoice(undefined)).toBe("auto");
    expect(() => parseGraphChoice("qmoe")).toThrow('--graph must be fused, sliced or auto, got "qmoe"');
  });
});

describe("a model built before present_new", () => {
  it("is refused at load with the rebuild command (the shared-buffer KV path is gone)", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "moe-edge-old-model-"));
    const m = JSON.parse(readFileSync("models/dev/tiny/model.json", "utf8")) as ModelManifest;
    m.io.outputs = m.io.outputs.filter((o) => !o.startsWith("present_new"));
    writeFileSync(path.join(dir, "model.json"), JSON.stringify(m));
    await expect(loadModelRunner(dir)).rejects.toThrow(/built before present_new .* rebuild it \(npm run build-model/);
    rmSync(dir, { recursive: true, force: true });
  });
});
