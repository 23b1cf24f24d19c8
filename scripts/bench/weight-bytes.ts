/**
 * Weight bytes one decode step must read from memory, from a model's manifest (the layouts graph.ts writes):
 * every int4 matrix as its packed nibbles plus its float32 block scales, the float32 router and norms, one
 * embedding row per token. The experts a step reads depend on its tokens' routing: at B streams the expected
 * number of distinct experts per layer under uniform routing is E * (1 - (1 - k/E)^B) (k at B = 1).
 * KV-cache reads are left out (a few hundred KB per token at bench lengths), so the bound is an upper one.
 */
import type { ModelManifest } from "../../contract/model-manifest";

export interface StepBytes {
  /** Bytes every step reads whatever its batch: attention, norms, router, lm_head (one logits row each). */
  dense: number;
  /** Bytes of one expert (fc1 + fc2) of one layer; 0 for dense models. */
  expert: number;
  /** Bytes the dense MLP of one layer reads (dense models only). */
  mlp: number;
}

export function stepWeightBytes(m: ModelManifest): StepBytes {
  const H = m.hidden_size;
  const I = m.intermediate_size;
  const bs = m.quantization.block_size;
  /** int4 [N, K]: N*K/2 bytes of nibbles and N*K/bs float32 scales. */
  const q4 = (N: number, K: number) => (N * K) / 2 + ((N * K) / bs) * 4;
  const qDim = m.num_heads * m.head_dim;
  const kvDim = m.num_kv_heads * m.head_dim;
  const attention = q4(qDim + 2 * kvDim, H) + q4(H, qDim);
  const norms = 2 * H * 4;
  const router = m.num_experts > 0 ? H * m.num_experts * 4 : 0;
  const expert = m.num_experts > 0 ? q4(2 * I, H) + q4(H, I) : 0;
  const mlp = m.num_experts > 0 ? 0 : q4(2 * I, H) + q4(H, I);
  // + one embedding row and the final norm.
  const dense = m.num_layers * (attention + norms + router) + 2 * H * 4 + q4(m.vocab_size, H);
  return { dense, expert, mlp };
}

/** Expected weight bytes per token of a decode step with `streams` tokens (one per stream). */
export function decodeBytesPerToken(m: ModelManifest, streams: number): number {
  const b = stepWeightBytes(m);
  const E = m.num_experts;
  const k = m.experts_per_token;
  const distinct = E > 0 ? E * (1 - (1 - k / E) ** streams) : 0;
  // lm_head and the embedding row are read once per step (MLAS streams the weights once for all rows).
  const step = b.dense + m.num_layers * (distinct * b.expert + b.mlp) + (streams - 1) * m.hidden_size * 4;
  return step / streams;
}
