/**
 * The decode bound's byte count (scripts/bench/weight-bytes.ts) against the graph the builder wrote: every
 * weight a step may read, plus what no decode step reads whole (the embedding table beyond one row, the rotary
 * tables), is exactly the external initializers' bytes (the file also holds 4096-byte alignment padding).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import onnxProto from "onnx-proto";
import { describe, expect, it } from "vitest";
import type { ModelManifest } from "../../contract/model-manifest";
import { decodeBytesPerToken, stepWeightBytes } from "../../scripts/bench/weight-bytes";
import { devModel } from "./engine-helpers";

describe("decode weight bytes", () => {
  for (const name of ["tiny", "small", "medium"] as const) {
    it(`${name}: dense + every expert + the unread tables = the weights file`, () => {
      const dir = devModel(name);
      const m = JSON.parse(readFileSync(path.join(dir, "model.json"), "utf8")) as ModelManifest;
      const b = stepWeightBytes(m);
      const H = m.hidden_size;
      const embedRest = (m.vocab_size - 1) * H * 4;
      const rope = 2 * m.context_length * (m.head_dim / 2) * 4;
      const all = b.dense + m.num_layers * (m.num_experts * b.expert + b.mlp) + embedRest + rope;
      expect(all).toBe(externalBytes(path.join(dir, "model.onnx")));
    });
  }

  it("one stream reads k of E experts; more streams share the dense bytes and touch more experts", () => {
    const m = JSON.parse(readFileSync(path.join(devModel("small"), "model.json"), "utf8")) as ModelManifest;
    const b = stepWeightBytes(m);
    expect(decodeBytesPerToken(m, 1)).toBe(b.dense + m.num_layers * m.experts_per_token * b.expert);
    const eight = decodeBytesPerToken(m, 8);
    expect(eight).toBeLessThan(decodeBytesPerToken(m, 1));
    // Per step, 8 streams never read more than every expert once.
    expect(eight * 8).toBeLessThanOrEqual(b.dense + 7 * H(m) * 4 + m.num_layers * m.num_experts * b.expert);
  });
});

const H = (m: ModelManifest) => m.hidden_size;

/** Sum of the `length` of every initializer stored in the external data file (model.onnx: one per weight). */
function externalBytes(file: string): number {
  const model = onnxProto.onnx.ModelProto.decode(readFileSync(file));
  let total = 0;
  for (const init of model.graph?.initializer ?? []) {
    const length = init.externalData?.find((e) => e.key === "length")?.value;
    if (length) total += Number(length);
  }
  return total;
}
