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
  /** Normalised hidden states [B, S, H] and the raw router logits [T, E]. */
  x: string;
  routerLogits: string;
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
  view(v: ViewDecl): string;
}

const MS = "com.microsoft";

/** Slot of expert `e` in the fused initializers (reverse order: see the tie rule above). */
export const expertSlot = (e: number, E: number): number => E - 1 - e;

export function fusedMoe(g: GraphOps, m: MoeLayer): void {
  const reversed = g.constI64("moe_expert_reverse", Array.from({ length: m.E }, (_, i) => m.E - 1 - i));
  g.node("Gather", [m.routerLogits, reversed], [`${m.L}.router_logits_slots`], { axis: 1 });
  g.node("QMoE", [m.x, `${m.L}.router_logits_slots`, m.fc1.weight, m.fc1.scales, "", m.fc2.weight, m.fc2.scales], [m.out], {
    k: m.topK,
    activation_type: "swiglu",
    normalize_routing_weights: 1,
    swiglu_fusion: 1,
    expert_weight_bits: 4,
    block_size: m.blockSize,
  }, MS);
}

export function slicedMoe(g: GraphOps, m: MoeLayer): void {
  const { L, H, I, E, topK: k, blockSize: bs } = m;
  const v = (s: string) => `${L}.moe.${s}`;
  const n = g.node;
  const c = g.constI64;

  n("Shape", [m.x], [v("x_shape")]);
  n("Reshape", [m.x, c("moe_rows_h", [-1, H])], [v("x2d")]);
  // Routing: top-k logits (lower index on ties), softmax over those k = Mixtral's renormalised weights.
  n("TopK", [m.routerLogits, c("moe_k", [k])], [v("top_logits"), v("top_experts")], { axis: -1, largest: 1, sorted: 1 });
  n("Softmax", [v("top_logits")], [v("top_weights")], { axis: -1 });
  n("Reshape", [v("top_experts"), c("moe_flat", [-1])], [v("pair_expert")]);
  n("Reshape", [v("top_weights"), c("moe_flat", [-1])], [v("pair_weight")]);
  // Sort the T*k pairs by expert: TopK on -expert over all of them (stable: equal experts keep pair order).
  n("Cast", [v("pair_expert")], [v("pair_expert_f")], { to: 1 });
  n("Neg", [v("pair_expert_f")], [v("pair_key")]);
  n("Shape", [v("pair_expert")], [v("pairs")]);
  n("TopK", [v("pair_key"), v("pairs")], [v("sorted_key"), v("order")], { axis: 0, largest: 1, sorted: 1 });
  n("Div", [v("order"), c("moe_k_scalar", [k])], [v("token")]);
  n("Gather", [v("x2d"), v("token")], [v("rows")], { axis: 0 });
  n("Gather", [v("pair_weight"), v("order")], [v("row_weight")], { axis: 0 });
  // Rows per expert, for Split (an expert with no rows gets an empty slice; MatMulNBits skips it).
  n("Unsqueeze", [v("pair_expert"), c("moe_axis1", [1])], [v("pair_expert_col")]);
  n("Equal", [v("pair_expert_col"), c("moe_expert_ids", Array.from({ length: E }, (_, e) => e))], [v("onehot")]);
  n("Cast", [v("onehot")], [v("onehot_i64")], { to: 7 });
  n("ReduceSum", [v("onehot_i64"), c("moe_axis0", [0])], [v("counts")], { keepdims: 0 });

  const mm = (x: string, out: string, K: number, N: number, w: { weight: string; scales: string }, e: number, kind: string) => {
    const slot = expertSlot(e, E);
    const wBytes = (N * K) / 2;
    const sBytes = (N * K * 4) / bs;
    const weight = g.view({ name: `${L}.expert${e}.${kind}.q4`, of: w.weight, byteOffset: slot * wBytes, byteLength: wBytes, dims: [N, K / bs, bs / 2] });
    const scales = g.view({ name: `${L}.expert${e}.${kind}.scales`, of: w.scales, byteOffset: slot * sBytes, byteLength: sBytes, dims: [N, K / bs] });
    n("MatMulNBits", [x, weight, scales], [out], { K, N, bits: 4, block_size: bs, accuracy_level: m.accuracyLevel }, MS);
  };
  const experts = Array.from({ length: E }, (_, e) => e);

  n("Split", [v("rows"), v("counts")], experts.map((e) => v(`x${e}`)), { axis: 0 });
  for (const e of experts) mm(v(`x${e}`), v(`gate_up${e}`), H, 2 * I, m.fc1, e, "fc1");
  n("Concat", experts.map((e) => v(`gate_up${e}`)), [v("gate_up")], { axis: 0 });
  // fc1 rows are interleaved (2j gate, 2j+1 up), so its output columns pair up: [R, I, 2].
  n("Reshape", [v("gate_up"), c("moe_pairs_shape", [0, I, 2])], [v("gate_up_pairs")]);
  n("Split", [v("gate_up_pairs"), c("moe_one_one", [1, 1])], [v("gate"), v("up")], { axis: 2 });
  n("Sigmoid", [v("gate")], [v("gate_sig")]);
  n("Mul", [v("gate"), v("gate_sig")], [v("gate_silu")]);
  n("Mul", [v("gate_silu"), v("up")], [v("act_pairs")]);
  n("Reshape", [v("act_pairs"), c("moe_rows_i", [0, I])], [v("act")]);
  n("Split", [v("act"), v("counts")], experts.map((e) => v(`act${e}`)), { axis: 0 });
  for (const e of experts) mm(v(`act${e}`), v(`down${e}`), I, H, m.fc2, e, "fc2");
  n("Concat", experts.map((e) => v(`down${e}`)), [v("down")], { axis: 0 });
  n("Unsqueeze", [v("row_weight"), c("moe_axis1", [1])], [v("row_weight_col")]);
  n("Mul", [v("down"), v("row_weight_col")], [v("weighted")]);
  // Each token's k rows summed back onto it.
  n("Shape", [v("x2d")], [v("x2d_shape")]);
  n("ConstantOfShape", [v("x2d_shape")], [v("zeros")]);
  n("Unsqueeze", [v("token"), c("moe_axis1", [1])], [v("token_col")]);
  n("ScatterND", [v("zeros"), v("token_col"), v("weighted")], [v("sum2d")], { reduction: "add" });
  n("Reshape", [v("sum2d"), v("x_shape")], [m.out]);
}
