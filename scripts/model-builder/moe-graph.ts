/**
 * A layer's mixture-of-experts block, in the two forms the builder writes over the same int4 weights:
 *
 *  - fused:  one com.microsoft.QMoE node (WebGPU, CUDA, and CPUs where MLAS has its int4 MoE GEMM: AVX-512).
 *  - sliced: per-expert MatMulNBits over only the rows routed to that expert, routing done in the graph.
 *            ONNX Runtime 1.30's CPU QMoE dequantizes each chosen expert to fp32 on every call without
 *            AVX-512, while MatMulNBits has AVX2 int4 kernels and returns at once on an empty input.
 *
 * Sliced, per layer: TopK over the fp32 router logits -> Softmax over the k (= softmax, top-k, renormalise)
 * -> sort the T*k (token, expert) pairs by expert -> Split the gathered rows by expert -> fc1 per expert
 * -> silu(gate)*up once over all rows -> Split -> fc2 per expert -> scale by routing weight -> ScatterND(add)
 * back onto the tokens. 2E MatMulNBits plus ~30 shared nodes, whatever the batch.
 *
 * Tie rule (both forms and the reference): on equal router logits the lower expert index wins. ONNX TopK
 * keeps the lower index; CPU QMoE's partial_sort keeps the higher, so the fused form stores experts in
 * reverse slot order and reverses the router logits to match.
 */
import type { NodeDef } from "./onnx-proto";

/** MLAS splits a MatMulNBits into 128-row tiles per thread; a tile of one row takes its lone-row kernel. */
export const MLAS_ROW_TILE = 128;

/** Per-expert initializer that is a byte range of a fused one: no second copy of the weights on disk. */
export interface ViewDecl {
  name: string;
  of: string;
  byteOffset: number;
  byteLength: number;
  dims: number[];
}

export interface MoeLayer {
  /** Layer prefix for value names, e.g. "layers.3". */
  L: string;
  /** Normalised hidden states [B, S, H], their shape, and the fp32 router weight [H, E]. */
  x: string;
  xShape: string;
  router: string;
  out: string;
  H: number;
  I: number;
  E: number;
  topK: number;
  blockSize: number;
  accuracyLevel: number;
  fc1: { weight: string; scales: string };
  fc2: { weight: string; scales: string };
}

/** What a form needs from the graph being written. */
export interface GraphOps {
  node(op: string, inputs: string[], outputs: string[], attrs?: NodeDef["attrs"], domain?: string): void;
  constI64(name: string, values: number[]): string;
  /** A 0-d int64 constant (Range, Gather indices). */
  scalarI64(name: string, value: number): string;
  view(v: ViewDecl): string;
}

const MS = "com.microsoft";

/** Slot of expert `e` in the fused initializers (reverse order: see the tie rule above). */
export const expertSlot = (e: number, E: number): number => E - 1 - e;

export function fusedMoe(g: GraphOps, m: MoeLayer): void {
  g.node("MatMul", [m.x, m.router], [`${m.L}.router_logits3d`]);
  g.node("Reshape", [`${m.L}.router_logits3d`, g.constI64("moe_router_shape", [-1, m.E])], [`${m.L}.router_logits`]);
  const reversed = g.constI64(
    "moe_expert_reverse",
    Array.from({ length: m.E }, (_, i) => m.E - 1 - i),
  );
  g.node("Gather", [`${m.L}.router_logits`, reversed], [`${m.L}.router_logits_slots`], { axis: 1 });
  g.node(
    "QMoE",
    [m.x, `${m.L}.router_logits_slots`, m.fc1.weight, m.fc1.scales, "", m.fc2.weight, m.fc2.scales],
    [m.out],
    {
      k: m.topK,
      activation_type: "swiglu",
      normalize_routing_weights: 1,
      swiglu_fusion: 1,
      expert_weight_bits: 4,
      block_size: m.blockSize,
    },
    MS,
  );
}

/**
 * `padRows` (batch-invariant variant, graph.ts): an expert with 1 mod 128 routed rows (a lone row in an MLAS
 * tile) also gets one pair on a zero row with weight 0; idle experts stay idle. The pad rows are scattered
 * into an extra row T that is dropped.
 */
export function slicedMoe(g: GraphOps, m: MoeLayer, padRows = false): void {
  const { L, H, I, E, topK: k, blockSize: bs } = m;
  const v = (s: string) => `${L}.moe.${s}`;
  const n = g.node;
  const c = g.constI64;

  n("Reshape", [m.x, c("moe_rows_h", [-1, H])], [v("x2d")]);
  n("MatMul", [v("x2d"), m.router], [v("router_logits")]);
  // Routing: top-k logits (lower index on ties), softmax over those k = Mixtral's renormalised weights.
  n("TopK", [v("router_logits"), c("moe_k", [k])], [v("top_logits"), v("top_experts")], {
    axis: -1,
    largest: 1,
    sorted: 1,
  });
  n("Softmax", [v("top_logits")], [v("top_weights")], { axis: -1 });
  n("Reshape", [v("top_experts"), c("moe_flat", [-1])], [v("pair_expert")]);
  // Weights as a column [T*k, 1]: gathered by sort order they scale each expert output row.
  n("Reshape", [v("top_weights"), c("moe_col", [-1, 1])], [v("pair_weight")]);
  const expertIds = c(
    "moe_expert_ids",
    Array.from({ length: E }, (_, e) => e),
  );
  /** Rows per expert of a list of pair experts (one-hot, summed). */
  const countsOf = (pairs: string, out: string) => {
    n("Unsqueeze", [pairs, c("moe_axis1", [1])], [`${out}.col`]);
    n("Equal", [`${out}.col`, expertIds], [`${out}.onehot`]);
    n("Cast", [`${out}.onehot`], [`${out}.onehot_i64`], { to: 7 });
    n("ReduceSum", [`${out}.onehot_i64`, c("moe_axis0", [0])], [out], { keepdims: 0 });
  };
  let pairExperts = v("pair_expert");
  let weights = v("pair_weight");
  let rowsFrom = v("x2d");
  let tokens = "";
  if (padRows) {
    n("Shape", [v("pair_expert")], [v("pairs_n")]);
    n("Gather", [v("pairs_n"), g.scalarI64("i64_zero", 0)], [v("pairs_scalar")], { axis: 0 });
    n("Range", [g.scalarI64("i64_zero", 0), v("pairs_scalar"), g.scalarI64("i64_one", 1)], [v("pair_index")]);
    n("Div", [v("pair_index"), c("moe_k_scalar", [k])], [v("pair_token")]);
    countsOf(v("pair_expert"), v("routed_counts"));
    n("Mod", [v("routed_counts"), c("i64_128_1d", [MLAS_ROW_TILE])], [v("routed_mod")]);
    n("Equal", [v("routed_mod"), c("i64_1_1d", [1])], [v("active")]);
    n("NonZero", [v("active")], [v("active_nz")]);
    n("Reshape", [v("active_nz"), c("moe_flat", [-1])], [v("pad_expert")]);
    n("Shape", [v("pad_expert")], [v("pads_n")]);
    n("Concat", [v("pads_n"), c("moe_one_1d", [1])], [v("pads_col_shape")], { axis: 0 });
    n("ConstantOfShape", [v("pads_col_shape")], [v("pad_weight")]);
    // Pad pairs read row T: a zero row appended to x.
    n("ConstantOfShape", [c("moe_zero_row_shape", [1, H])], [v("zero_row")]);
    n("Concat", [v("x2d"), v("zero_row")], [v("x2d_padded")], { axis: 0 });
    n("Shape", [v("x2d")], [v("x2d_shape_t")]);
    n("Slice", [v("x2d_shape_t"), c("moe_i64_0", [0]), c("moe_i64_1", [1])], [v("t_1d")]);
    n("Expand", [v("t_1d"), v("pads_n")], [v("pad_token")]);
    n("Concat", [v("pair_expert"), v("pad_expert")], [v("all_expert")], { axis: 0 });
    n("Concat", [v("pair_weight"), v("pad_weight")], [v("all_weight")], { axis: 0 });
    n("Concat", [v("pair_token"), v("pad_token")], [v("all_token")], { axis: 0 });
    [pairExperts, weights, tokens, rowsFrom] = [v("all_expert"), v("all_weight"), v("all_token"), v("x2d_padded")];
  }
  // Sort the pairs by expert: an ascending TopK over all of them (the order within an expert does not matter:
  // rows are independent, and the batch-invariant variant keeps every row out of a lone-row tile).
  n("Cast", [pairExperts], [v("pair_key")], { to: 1 });
  n("Shape", [pairExperts], [v("pairs")]);
  n("TopK", [v("pair_key"), v("pairs")], [v("sorted_key"), v("order")], { axis: 0, largest: 0, sorted: 1 });
  if (padRows) n("Gather", [tokens, v("order")], [v("token")], { axis: 0 });
  else n("Div", [v("order"), c("moe_k_scalar", [k])], [v("token")]);
  n("Gather", [rowsFrom, v("token")], [v("rows")], { axis: 0 });
  n("Gather", [weights, v("order")], [v("row_weight")], { axis: 0 });
  // Rows per expert, for Split (an expert with no rows gets an empty slice; MatMulNBits skips it).
  countsOf(pairExperts, v("counts"));

  const mm = (
    x: string,
    out: string,
    K: number,
    N: number,
    w: { weight: string; scales: string },
    e: number,
    kind: string,
  ) => {
    const slot = expertSlot(e, E);
    const wBytes = (N * K) / 2;
    const sBytes = (N * K * 4) / bs;
    const weight = g.view({
      name: `${L}.expert${e}.${kind}.q4`,
      of: w.weight,
      byteOffset: slot * wBytes,
      byteLength: wBytes,
      dims: [N, K / bs, bs / 2],
    });
    const scales = g.view({
      name: `${L}.expert${e}.${kind}.scales`,
      of: w.scales,
      byteOffset: slot * sBytes,
      byteLength: sBytes,
      dims: [N, K / bs],
    });
    n(
      "MatMulNBits",
      [x, weight, scales],
      [out],
      { K, N, bits: 4, block_size: bs, accuracy_level: m.accuracyLevel },
      MS,
    );
  };
  const experts = Array.from({ length: E }, (_, e) => e);

  n(
    "Split",
    [v("rows"), v("counts")],
    experts.map((e) => v(`x${e}`)),
    { axis: 0 },
  );
  for (const e of experts) mm(v(`x${e}`), v(`gate_up${e}`), H, 2 * I, m.fc1, e, "fc1");
  n(
    "Concat",
    experts.map((e) => v(`gate_up${e}`)),
    [v("gate_up")],
    { axis: 0 },
  );
  // fc1 rows are interleaved (2j gate, 2j+1 up), so its output columns pair up: [R, I, 2].
  n("Reshape", [v("gate_up"), c("moe_pairs_shape", [0, I, 2])], [v("gate_up_pairs")]);
  n("Split", [v("gate_up_pairs"), c("moe_one_one", [1, 1])], [v("gate"), v("up")], { axis: 2 });
  n("Sigmoid", [v("gate")], [v("gate_sig")]);
  n("Mul", [v("gate"), v("gate_sig")], [v("gate_silu")]);
  n("Mul", [v("gate_silu"), v("up")], [v("act_pairs")]);
  n("Reshape", [v("act_pairs"), c("moe_rows_i", [0, I])], [v("act")]);
  n(
    "Split",
    [v("act"), v("counts")],
    experts.map((e) => v(`act${e}`)),
    { axis: 0 },
  );
  for (const e of experts) mm(v(`act${e}`), v(`down${e}`), I, H, m.fc2, e, "fc2");
  n(
    "Concat",
    experts.map((e) => v(`down${e}`)),
    [v("down")],
    { axis: 0 },
  );
  n("Mul", [v("down"), v("row_weight")], [v("weighted")]);
  // Each token's k rows summed back onto it (pad rows onto row T, then dropped).
  n("Shape", [rowsFrom], [v("x2d_shape")]);
  n("ConstantOfShape", [v("x2d_shape")], [v("zeros")]);
  n("Unsqueeze", [v("token"), c("moe_axis1", [1])], [v("token_col")]);
  n("ScatterND", [v("zeros"), v("token_col"), v("weighted")], [v("sum2d")], { reduction: "add" });
  if (padRows) n("Slice", [v("sum2d"), c("moe_i64_0", [0]), c("moe_i64_minus1", [-1])], [v("sum2d_real")]);
  n("Reshape", [padRows ? v("sum2d_real") : v("sum2d"), m.xShape], [m.out]);
}
