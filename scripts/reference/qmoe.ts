/**
 * One com.microsoft.QMoE node in isolation, laid out like scripts/model-builder/graph.ts (int4, block
 * `bs`, swiglu_fusion=1 with interleaved gate/up rows, fp32 scales, no zero points), its random int4
 * weights, and a float64 reference over the dequantized weights. Shared by the QMoE micro-benchmark and
 * the fast-path test, which both ask which ORT kernel runs and whether it is exact.
 */
import { GRAPH_IR_VERSION, GRAPH_OPSETS } from "../model-builder/graph";
import { DataType, encodeModel, type NodeDef, type TensorDef } from "../model-builder/onnx-proto";
import { dequantizeRow, quantizeRow } from "../model-builder/quantize";

export interface QMoEDims {
  hidden: number;
  inter: number;
  experts: number;
  topK: number;
  blockSize: number;
}

export interface QuantMatrix {
  q: Uint8Array;
  s: Float32Array;
}

/** A rows × cols matrix of `rand()` values, quantized row by row with the builder's quantizer. */
export function randomQuantMatrix(rows: number, cols: number, bs: number, rand: () => number): QuantMatrix {
  const q = new Uint8Array((rows * cols) / 2);
  const s = new Float32Array((rows * cols) / bs);
  const row = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) row[c] = rand();
    quantizeRow(row, 0, cols, bs, q, (r * cols) / 2, s, (r * cols) / bs);
  }
  return { q, s };
}

/** Float64 Mixtral MoE on the dequantized weights: softmax → top-k → renormalise, silu(gate)·up, fc2. */
export function qmoeReference(
  d: QMoEDims,
  x: Float32Array,
  logits: Float32Array,
  fc1: QuantMatrix,
  fc2: QuantMatrix,
): Float64Array {
  const { hidden: H, inter: I, experts: E, topK: K, blockSize: BS } = d;
  const M = x.length / H;
  const out = new Float64Array(M * H);
  const fc1Row = (r: number) => dequantizeRow(fc1.q, (r * H) / 2, fc1.s, (r * H) / BS, H, BS);
  for (let t = 0; t < M; t++) {
    const top = Array.from(logits.subarray(t * E, (t + 1) * E), (v, e) => [v, e])
      .sort((a, b) => b[0] - a[0])
      .slice(0, K);
    const w = top.map(([v]) => Math.exp(v - top[0][0]));
    const sum = w.reduce((a, b) => a + b, 0);
    const xt = x.subarray(t * H, (t + 1) * H);
    top.forEach(([, e], j) => {
      const act = new Float64Array(I);
      for (let i = 0; i < I; i++) {
        const g = fc1Row(e * 2 * I + 2 * i).reduce((a, v, c) => a + v * xt[c], 0);
        const u = fc1Row(e * 2 * I + 2 * i + 1).reduce((a, v, c) => a + v * xt[c], 0);
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

export interface QMoEModelOptions {
  /** Store the weights in this external data file (returned as `data`) instead of inline. */
  externalFile?: string;
  /** Also declare the weights as graph inputs: overridable, hence not constant, so ORT never prepacks them. */
  overridable?: boolean;
  accuracyLevel?: number;
}

/** The ONNX model (inputs x [m, H], logits [m, E]; output y [m, H]) and its external data, if any. */
export function qmoeModel(
  d: QMoEDims,
  fc1: QuantMatrix,
  fc2: QuantMatrix,
  o: QMoEModelOptions = {},
): { proto: Uint8Array; data?: Buffer } {
  const { hidden: H, inter: I, experts: E, blockSize: BS } = d;
  const u8 = (f: Float32Array) => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
  const weights = [
    { name: "fc1_w", dataType: DataType.UINT8, dims: [E, 2 * I, H / 2], bytes: fc1.q },
    { name: "fc1_s", dataType: DataType.FLOAT, dims: [E, 2 * I, H / BS], bytes: u8(fc1.s) },
    { name: "fc2_w", dataType: DataType.UINT8, dims: [E, H, I / 2], bytes: fc2.q },
    { name: "fc2_s", dataType: DataType.FLOAT, dims: [E, H, I / BS], bytes: u8(fc2.s) },
  ];
  let offset = 0;
  const initializers: TensorDef[] = weights.map((w) => {
    if (!o.externalFile) return { name: w.name, dataType: w.dataType, dims: w.dims, raw: w.bytes };
    const t = {
      name: w.name,
      dataType: w.dataType,
      dims: w.dims,
      external: { location: o.externalFile, offset, length: w.bytes.length },
    };
    offset += w.bytes.length;
    return t;
  });
  const attrs: NodeDef["attrs"] = {
    k: d.topK,
    activation_type: "swiglu",
    normalize_routing_weights: 1,
    swiglu_fusion: 1,
    expert_weight_bits: 4,
    block_size: BS,
  };
  if (o.accuracyLevel !== undefined) attrs.accuracy_level = o.accuracyLevel;
  const proto = encodeModel({
    irVersion: GRAPH_IR_VERSION,
    opsets: GRAPH_OPSETS,
    producerName: "qmoe-reference",
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
          attrs,
        },
      ],
      initializers,
      inputs: [
        { name: "x", elemType: DataType.FLOAT, shape: ["m", H] },
        { name: "logits", elemType: DataType.FLOAT, shape: ["m", E] },
        ...(o.overridable ? weights.map((w) => ({ name: w.name, elemType: w.dataType, shape: w.dims })) : []),
      ],
      outputs: [{ name: "y", elemType: DataType.FLOAT, shape: ["m", H] }],
    },
  });
  return { proto, data: o.externalFile ? Buffer.concat(weights.map((w) => w.bytes)) : undefined };
}
