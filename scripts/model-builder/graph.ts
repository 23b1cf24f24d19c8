/**
 * The ONNX graph for a Mixtral/Mistral checkpoint (DESIGN.md §3 layouts), described as nodes,
 * initializer declarations, and the jobs that fill the external initializers from the checkpoint.
 * I/O names and shapes follow contract/model-manifest.ts.
 */
import {
  pastKeyName,
  pastValueName,
  presentKeyName,
  presentNewKeyName,
  presentNewValueName,
  presentValueName,
} from "../../contract/model-manifest";
import { expertSlot, fusedMoe, type GraphOps, MLAS_ROW_TILE, slicedMoe, type ViewDecl } from "./moe-graph";
import { DataType, type NodeDef, type ValueInfoDef } from "./onnx-proto";

/** The ONNX IR version and opsets every graph we write targets (ONNX Runtime 1.30 CPU, WebGPU, WASM). */
export const GRAPH_IR_VERSION = 8;
export const GRAPH_OPSETS = [
  { domain: "", version: 17 },
  { domain: "com.microsoft", version: 1 },
];
import type { ModelSpec } from "./spec";

export interface InitDecl {
  name: string;
  dataType: DataType;
  dims: number[];
  byteLength: number;
  /** Small constants stored inside model.onnx; everything else goes to the external file. */
  inline?: Uint8Array;
}

/** Rows of several [R, K] source tensors, interleaved: source s row i -> output row outRow + i*n + s. */
export interface RowGroup {
  sources: string[];
  outRow: number;
}

export type Job =
  | { kind: "f32"; init: string; tensor: string; transpose?: boolean }
  | { kind: "q4"; weight: string; scales: string; K: number; groups: RowGroup[] }
  | { kind: "rope"; cos: string; sin: string };

/** "fused": one QMoE per layer; "sliced": per-expert MatMulNBits (moe-graph.ts). Dense models: the same graph. */
export type GraphForm = "fused" | "sliced";

export interface GraphPlan {
  nodes: NodeDef[];
  /** Every form declares the same initializers in the same order, so all forms share one data file layout. */
  inits: InitDecl[];
  /** Byte ranges of `inits` used as initializers of their own (sliced experts). */
  views: ViewDecl[];
  jobs: Job[];
  inputs: ValueInfoDef[];
  outputs: ValueInfoDef[];
}

const MS = "com.microsoft";

function i64(values: number[]): Uint8Array {
  return new Uint8Array(BigInt64Array.from(values.map((v) => BigInt(v))).buffer);
}

/**
 * `padRows` (the batch-invariant variant): no MatMulNBits ever leaves a row alone in an MLAS row tile. MLAS's
 * AVX2 dispatch runs a one-row tile through a kernel of its own whose rounding differs from its multi-row
 * kernel (which treats every row alike), so a sequence's logits would depend on how many rows ran beside it.
 * A projection whose row count is 1 mod 128 gets one zero row appended (its output dropped); so does an
 * expert with 1 mod 128 routed rows, as a zero-row pair (moe-graph.ts). Other calls run as they are.
 */
export function buildGraph(s: ModelSpec, form: GraphForm = "fused", padRows = false): GraphPlan {
  const nodes: NodeDef[] = [];
  const inits: InitDecl[] = [];
  const views: ViewDecl[] = [];
  const jobs: Job[] = [];
  const H = s.hidden;
  const D = s.headDim;
  const bs = s.blockSize;
  let counter = 0;

  const node = (op: string, inputs: string[], outputs: string[], attrs?: NodeDef["attrs"], domain?: string): void => {
    nodes.push({ op, inputs, outputs, attrs, domain, name: `${op}_${counter++}` });
  };
  const f32Init = (name: string, dims: number[]): string => {
    inits.push({ name, dataType: DataType.FLOAT, dims, byteLength: dims.reduce((a, b) => a * b, 1) * 4 });
    return name;
  };
  const constI64 = (name: string, values: number[]): string => {
    if (inits.some((d) => d.name === name)) return name;
    const raw = i64(values);
    inits.push({ name, dataType: DataType.INT64, dims: [values.length], byteLength: raw.length, inline: raw });
    return name;
  };
  const scalarI64 = (name: string, v: number): string => {
    if (inits.some((d) => d.name === name)) return name;
    inits.push({ name, dataType: DataType.INT64, dims: [], byteLength: 8, inline: i64([v]) });
    return name;
  };
  const fromTensor = (name: string, tensor: string, dims: number[], transpose = false): string => {
    f32Init(name, dims);
    jobs.push({ kind: "f32", init: name, tensor, transpose });
    return name;
  };
  /** Declares a [rows, K] int4 matrix: B uint8 shaped `wDims`, scales float32 shaped `sDims`. */
  const q4 = (name: string, rows: number, K: number, groups: RowGroup[], wDims: number[], sDims: number[]) => {
    const weight = `${name}.q4`;
    const scales = `${name}.scales`;
    inits.push({ name: weight, dataType: DataType.UINT8, dims: wDims, byteLength: (rows * K) / 2 });
    inits.push({ name: scales, dataType: DataType.FLOAT, dims: sDims, byteLength: (rows * K * 4) / bs });
    jobs.push({ kind: "q4", weight, scales, K, groups });
    return { weight, scales };
  };
  /** MatMulNBits over the concatenated rows of `sources` (each a [rows_i, K] HF Linear weight). */
  const matmulNBits = (
    name: string,
    x: string,
    out: string,
    K: number,
    sources: { tensor: string; rows: number }[],
  ): void => {
    const N = sources.reduce((a, b) => a + b.rows, 0);
    let row = 0;
    const groups = sources.map((src) => {
      const g = { sources: [src.tensor], outRow: row };
      row += src.rows;
      return g;
    });
    const w = q4(name, N, K, groups, [N, K / bs, bs / 2], [N, K / bs]);
    const attrs = { K, N, bits: 4, block_size: bs, accuracy_level: s.accuracyLevel };
    if (!padRows) {
      node("MatMulNBits", [x, w.weight, w.scales], [out], attrs, MS);
      return;
    }
    // x is [B, S, K] except for lm_head's gathered rows [N, K]: flatten, append a zero row when the row count
    // would put a row alone in an MLAS tile, drop its output.
    const rows = rank2.has(x) ? "logits" : "tokens";
    const flat = rows === "logits" ? x : `${name}.x2d`;
    if (flat !== x) node("Reshape", [x, constI64(`rows_${K}`, [-1, K])], [flat]);
    node("Concat", [flat, padBlock(rows, K)], [`${name}.x_padded`], { axis: 0 });
    node("MatMulNBits", [`${name}.x_padded`, w.weight, w.scales], [`${name}.y_padded`], attrs, MS);
    const y = flat === x ? out : `${name}.y2d`;
    node(
      "Slice",
      [`${name}.y_padded`, constI64("i64_0_1d", [0]), rowCount(rows).count, constI64("i64_0_1d", [0])],
      [y],
    );
    if (y !== out) node("Reshape", [y, bsShape(N)], [out]);
  };
  /** Tensors already [rows, K] (no [B, S] to restore). */
  const rank2 = new Set(["hidden_selected"]);
  /**
   * Row count M ([1]) of the token rows (B*S) or the logits rows, and the pad (0 or 1 rows) that keeps a row
   * from being alone in one of MLAS's 128-row tiles: M mod 128 == 1 (M = 1 included).
   */
  const rowCount = (rows: "tokens" | "logits"): { count: string; pad: string } => {
    const count = `${rows}_rows_count`;
    const pad = `${rows}_rows_pad`;
    if (!nodes.some((n) => n.outputs[0] === count)) {
      if (rows === "tokens") node("ReduceProd", ["ids_shape"], [count], { keepdims: 1 });
      else node("Shape", ["logits_indices"], [count]);
      node("Mod", [count, constI64("i64_128_1d", [MLAS_ROW_TILE])], [`${rows}_rows_mod`]);
      node("Equal", [`${rows}_rows_mod`, constI64("i64_1_1d", [1])], [`${rows}_rows_lone`]);
      node("Cast", [`${rows}_rows_lone`], [pad], { to: DataType.INT64 });
    }
    return { count, pad };
  };
  /** [pad, K] zeros for `rows`. */
  const padBlock = (rows: "tokens" | "logits", K: number): string => {
    const name = `${rows}_pad_block_${K}`;
    if (nodes.some((n) => n.outputs[0] === name)) return name;
    const zero = `zero_row_${K}`;
    if (!nodes.some((n) => n.outputs[0] === zero))
      node("ConstantOfShape", [constI64(`zero_row_shape_${K}`, [1, K])], [zero]);
    node("Slice", [zero, constI64("i64_0_1d", [0]), rowCount(rows).pad, constI64("i64_0_1d", [0])], [name]);
    return name;
  };
  /** [B, S, N] from input_ids' [B, S]. */
  const bsShape = (N: number): string => {
    const name = `bs_shape_${N}`;
    if (!nodes.some((n) => n.outputs[0] === name))
      node("Concat", ["ids_shape", constI64(`dim_${N}`, [N])], [name], { axis: 0 });
    return name;
  };

  const ops: GraphOps = {
    node,
    constI64,
    scalarI64,
    view: (v) => {
      views.push(v);
      return v.name;
    },
  };

  // Embedding table kept in float32: exact, and Gather reads only the rows it needs.
  const embed = fromTensor("embed_tokens", "model.embed_tokens.weight", [s.vocab, H]);
  node("Gather", [embed, "input_ids"], ["embeds"], { axis: 0 });

  const cos = f32Init("cos_cache", [s.context, D / 2]);
  const sin = f32Init("sin_cache", [s.context, D / 2]);
  jobs.push({ kind: "rope", cos, sin });
  const eps = { float: s.eps };
  // [B, S, H]: the shape of every layer's hidden states.
  if (s.moe) node("Shape", ["embeds"], ["hidden_shape"]);

  // present_new (contract/model-manifest.ts): the S rows each call writes, sequence b's at positions
  // seqlens_k[b]+1-S+s, gathered from GQA's present (it exposes rotated K nowhere else). Indices
  // [B, kvH, S, 1] built once; GatherND(batch_dims=2) per layer reads B*kvH*S*D floats.
  const [zero, one] = [scalarI64("i64_zero", 0), scalarI64("i64_one", 1)];
  node("Shape", ["input_ids"], ["ids_shape"]);
  node("Gather", ["ids_shape", one], ["new_len"], { axis: 0 });
  node("Range", [zero, "new_len", one], ["new_offsets"]);
  node("Cast", ["seqlens_k"], ["seqlens_k_i64"], { to: DataType.INT64 });
  node("Sub", [one, "new_len"], ["one_minus_len"]);
  node("Add", ["seqlens_k_i64", "one_minus_len"], ["new_first"]);
  node("Unsqueeze", ["new_first", constI64("axes_1", [1])], ["new_first_col"]);
  node("Add", ["new_first_col", "new_offsets"], ["new_positions"]);
  node("Unsqueeze", ["new_positions", constI64("axes_1_3", [1, 3])], ["new_positions_4d"]);
  node("Expand", ["new_positions_4d", constI64("new_rows_expand", [1, s.kvHeads, 1, 1])], ["new_rows_index"]);
  const splitSizes = s.moe ? "" : constI64("mlp_split", [s.inter, s.inter]);

  let mlpOut = "";
  let residual = "embeds";
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    const L = `layers.${l}`;
    const lnIn = fromTensor(`${L}.input_layernorm`, p + "input_layernorm.weight", [H]);
    const h = `${L}.attn_norm`;
    if (l === 0) {
      node("SimplifiedLayerNormalization", ["embeds", lnIn], [h], { axis: -1, epsilon: eps });
    } else {
      const sum = `${L}.residual_in`;
      node("SkipSimplifiedLayerNormalization", [mlpOut, residual, lnIn], [h, "", "", sum], { epsilon: eps }, MS);
      residual = sum;
    }

    // Packed QKV: one MatMulNBits, fed to GroupQueryAttention as packed QKV (key/value inputs empty).
    const qkv = `${L}.qkv`;
    matmulNBits(`${L}.qkv_proj`, h, qkv, H, [
      { tensor: p + "self_attn.q_proj.weight", rows: s.heads * D },
      { tensor: p + "self_attn.k_proj.weight", rows: s.kvHeads * D },
      { tensor: p + "self_attn.v_proj.weight", rows: s.kvHeads * D },
    ]);
    const attn = `${L}.attn`;
    node(
      "GroupQueryAttention",
      [qkv, "", "", pastKeyName(l), pastValueName(l), "seqlens_k", "total_sequence_length", cos, sin],
      [attn, presentKeyName(l), presentValueName(l)],
      {
        num_heads: s.heads,
        kv_num_heads: s.kvHeads,
        do_rotary: 1,
        rotary_interleaved: 0,
        local_window_size: s.slidingWindow ?? -1,
        scale: { float: 1 / Math.sqrt(D) },
      },
      MS,
    );
    node("GatherND", [presentKeyName(l), "new_rows_index"], [presentNewKeyName(l)], { batch_dims: 2 });
    node("GatherND", [presentValueName(l), "new_rows_index"], [presentNewValueName(l)], { batch_dims: 2 });
    const attnOut = `${L}.attn_out`;
    matmulNBits(`${L}.o_proj`, attn, attnOut, s.heads * D, [{ tensor: p + "self_attn.o_proj.weight", rows: H }]);

    const lnPost = fromTensor(`${L}.post_attention_layernorm`, p + "post_attention_layernorm.weight", [H]);
    const h2 = `${L}.mlp_norm`;
    const sum2 = `${L}.residual_mid`;
    node("SkipSimplifiedLayerNormalization", [attnOut, residual, lnPost], [h2, "", "", sum2], { epsilon: eps }, MS);
    residual = sum2;

    mlpOut = `${L}.mlp_out`;
    if (s.moe) {
      const E = s.experts;
      const I = s.inter;
      // Router kept in float32; both MoE forms take raw logits (softmax -> top-k -> renormalise).
      const gate = fromTensor(`${L}.router`, p + "block_sparse_moe.gate.weight", [H, E], true);
      const ex = (e: number, w: string) => `${p}block_sparse_moe.experts.${e}.${w}.weight`;
      // Expert e lives in slot expertSlot(e) (moe-graph.ts: the tie rule).
      // fc1 rows interleaved for swiglu_fusion: row 2j = w1 (gate) row j, row 2j+1 = w3 (up) row j.
      const fc1 = q4(
        `${L}.moe_fc1`,
        E * 2 * I,
        H,
        Array.from({ length: E }, (_, e) => ({
          sources: [ex(e, "w1"), ex(e, "w3")],
          outRow: expertSlot(e, E) * 2 * I,
        })),
        [E, 2 * I, H / 2],
        [E, 2 * I, H / bs],
      );
      const fc2 = q4(
        `${L}.moe_fc2`,
        E * H,
        I,
        Array.from({ length: E }, (_, e) => ({ sources: [ex(e, "w2")], outRow: expertSlot(e, E) * H })),
        [E, H, I / 2],
        [E, H, I / bs],
      );
      const layer = {
        L,
        x: h2,
        xShape: "hidden_shape",
        router: gate,
        out: mlpOut,
        H,
        I,
        E,
        topK: s.topK,
        blockSize: bs,
        accuracyLevel: s.accuracyLevel,
        fc1,
        fc2,
      };
      if (form === "fused") fusedMoe(ops, layer);
      else slicedMoe(ops, layer, padRows);
    } else {
      const I = s.inter;
      matmulNBits(`${L}.gate_up_proj`, h2, `${L}.gate_up`, H, [
        { tensor: p + "mlp.gate_proj.weight", rows: I },
        { tensor: p + "mlp.up_proj.weight", rows: I },
      ]);
      node("Split", [`${L}.gate_up`, splitSizes], [`${L}.gate`, `${L}.up`], { axis: -1 });
      node("Sigmoid", [`${L}.gate`], [`${L}.gate_sig`]);
      node("Mul", [`${L}.gate`, `${L}.gate_sig`], [`${L}.gate_silu`]);
      node("Mul", [`${L}.gate_silu`, `${L}.up`], [`${L}.act`]);
      matmulNBits(`${L}.down_proj`, `${L}.act`, mlpOut, I, [{ tensor: p + "mlp.down_proj.weight", rows: H }]);
    }
  }

  const norm = fromTensor("final_norm", "model.norm.weight", [H]);
  node("SkipSimplifiedLayerNormalization", [mlpOut, residual, norm], ["last_hidden_state"], { epsilon: eps }, MS);
  node("Reshape", ["last_hidden_state", constI64("flat_shape", [-1, H])], ["hidden_flat"]);
  node("Gather", ["hidden_flat", "logits_indices"], ["hidden_selected"], { axis: 0 });
  const lmSource = s.tiedLmHead ? "model.embed_tokens.weight" : "lm_head.weight";
  matmulNBits("lm_head", "hidden_selected", "logits", H, [{ tensor: lmSource, rows: s.vocab }]);

  const kv = (name: string, extent: string): ValueInfoDef => ({
    name,
    elemType: DataType.FLOAT,
    shape: ["batch", s.kvHeads, extent, D],
  });
  const inputs: ValueInfoDef[] = [
    { name: "input_ids", elemType: DataType.INT64, shape: ["batch", "sequence"] },
    { name: "seqlens_k", elemType: DataType.INT32, shape: ["batch"] },
    { name: "total_sequence_length", elemType: DataType.INT32, shape: [] },
    { name: "logits_indices", elemType: DataType.INT64, shape: ["logits_rows"] },
  ];
  const outputs: ValueInfoDef[] = [
    { name: "logits", elemType: DataType.FLOAT, shape: ["logits_rows", s.vocab] },
    { name: "last_hidden_state", elemType: DataType.FLOAT, shape: ["batch", "sequence", H] },
  ];
  for (let l = 0; l < s.layers; l++) {
    inputs.push(kv(pastKeyName(l), "past_sequence"), kv(pastValueName(l), "past_sequence"));
    outputs.push(kv(presentNewKeyName(l), "sequence"), kv(presentNewValueName(l), "sequence"));
  }
  return { nodes, inits, views, jobs, inputs, outputs };
}
