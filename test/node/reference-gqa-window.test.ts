/**
 * Pins ORT's GroupQueryAttention local_window_size semantics against Hugging Face's sliding window
 * (masking_utils: key j visible from query i iff i - window < j <= i, i.e. `window` keys).
 * Measured on onnxruntime-node 1.30 CPU: local_window_size = W keeps exactly W keys, in prefill and
 * decode, so the builder must pass local_window_size = sliding_window (not sliding_window - 1).
 * If an ORT upgrade changes this, this test says so before the whole-graph test does.
 */
import { describe, expect, it } from "vitest";
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import { attends } from "../../scripts/reference/math";

const { onnx } = onnxProto;
const D = 8;

function valueInfo(name: string, elemType: number, dims: (number | string)[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

async function gqaSession(window: number, s: number): Promise<ort.InferenceSession> {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [
      { domain: "", version: 17 },
      { domain: "com.microsoft", version: 1 },
    ],
    graph: {
      name: "gqa",
      node: [
        {
          opType: "GroupQueryAttention",
          domain: "com.microsoft",
          input: ["q", "k", "v", "pk", "pv", "sl", "tl"],
          output: ["o", "prk", "prv"],
          attribute: [
            { name: "num_heads", type: onnx.AttributeProto.AttributeType.INT, i: 1 },
            { name: "kv_num_heads", type: onnx.AttributeProto.AttributeType.INT, i: 1 },
            { name: "local_window_size", type: onnx.AttributeProto.AttributeType.INT, i: window },
          ],
        },
      ],
      input: [
        valueInfo("q", 1, [1, s, D]),
        valueInfo("k", 1, [1, s, D]),
        valueInfo("v", 1, [1, s, D]),
        valueInfo("pk", 1, [1, 1, "P", D]),
        valueInfo("pv", 1, [1, 1, "P", D]),
        valueInfo("sl", 6, [1]),
        valueInfo("tl", 6, []),
      ],
      output: [valueInfo("o", 1, [1, s, D]), valueInfo("prk", 1, [1, 1, "T", D]), valueInfo("prv", 1, [1, 1, "T", D])],
    },
  });
  return ort.InferenceSession.create(onnx.ModelProto.encode(model).finish(), { intraOpNumThreads: 1 });
}

/** Zero queries/keys make attention uniform over the visible keys; value = key position, so output = mean visible position. */
async function meanVisible(window: number, past: number, s: number): Promise<number[]> {
  const sess = await gqaSession(window, s);
  const f = (n: number) => new Float32Array(n);
  const pv = f(past * D);
  for (let j = 0; j < past; j++) pv[j * D] = j;
  const v = f(s * D);
  for (let j = 0; j < s; j++) v[j * D] = past + j;
  const total = past + s;
  const r = await sess.run({
    q: new ort.Tensor("float32", f(s * D), [1, s, D]),
    k: new ort.Tensor("float32", f(s * D), [1, s, D]),
    v: new ort.Tensor("float32", v, [1, s, D]),
    pk: new ort.Tensor("float32", f(past * D), [1, 1, past, D]),
    pv: new ort.Tensor("float32", pv, [1, 1, past, D]),
    sl: new ort.Tensor("int32", Int32Array.from([total - 1]), [1]),
    tl: new ort.Tensor("int32", Int32Array.from([total]), []),
  });
  await sess.release();
  const o = r.o.data as Float32Array;
  return [...Array(s).keys()].map((i) => o[i * D]);
}

function hfMeanVisible(window: number, i: number): number {
  const vis = [...Array(i + 1).keys()].filter((j) => attends(i, j, window));
  return vis.reduce((a, b) => a + b, 0) / vis.length;
}

describe("ORT GroupQueryAttention local_window_size vs HF sliding_window", () => {
  it("prefill: local_window_size = W shows exactly the last W keys", async () => {
    const got = await meanVisible(3, 0, 8);
    got.forEach((g, i) => {
      expect(g, `position ${i}`).toBeCloseTo(hfMeanVisible(3, i), 5);
    });
  });

  it("decode with past: same W keys", async () => {
    const [g] = await meanVisible(3, 7, 1);
    expect(g).toBeCloseTo(hfMeanVisible(3, 7), 5); // mean(5, 6, 7)
  });
});
