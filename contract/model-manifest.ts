/**
 * `model.json`: written by the model builder (scripts/model-builder) next to `model.onnx`,
 * read by the backend's model runner. Everything a server needs to run the graph.
 */
export interface ModelManifest {
  format: "moe-edge-onnx";
  format_version: 1;
  /** Short serving name, e.g. "tiny", "small", "mixtral-8x7b-instruct". */
  name: string;
  architecture: "MixtralForCausalLM" | "MistralForCausalLM";
  hidden_size: number;
  intermediate_size: number;
  num_layers: number;
  num_heads: number;
  num_kv_heads: number;
  head_dim: number;
  /** Dense models: 0 experts. */
  num_experts: number;
  experts_per_token: number;
  vocab_size: number;
  context_length: number;
  rope_theta: number;
  rms_norm_eps: number;
  /** null when the model has no sliding window. */
  sliding_window: number | null;
  bos_token_id: number;
  eos_token_id: number;
  quantization: {
    method: "int4-symmetric-absmax";
    block_size: number;
    /** MatMulNBits accuracy_level (4 = int8 activations on CPU). */
    accuracy_level: number;
  };
  tokenizer: { kind: "mistral-v1-sentencepiece"; vocab_size: number };
  /** Graph I/O names; see GRAPH_IO below for their shapes. */
  io: {
    inputs: string[];
    outputs: string[];
  };
  source: {
    /** sha256 over the source config.json and safetensors headers. */
    checksum: string;
    bytes: number;
    dtype: "bf16" | "f16" | "f32";
  };
  weights_file: string;
  /**
   * Graph files by MoE form, all over `weights_file` (scripts/model-builder/moe-graph.ts): "fused" (one QMoE
   * per layer: GPU EPs, AVX-512 CPUs) and "sliced" (per-expert MatMulNBits: CPUs without MLAS's int4 MoE GEMM).
   * Dense models name the same file for both. `batch_invariant`: the sliced (or dense) graph with no
   * MatMulNBits ever given a lone row, for CPUs whose MLAS rounds a lone row differently (AVX2, graph.ts).
   * Absent in builds that predate the sliced form: model.onnx, fused.
   */
  graphs?: Record<GraphForm, string> & { batch_invariant?: string };
}

export type GraphForm = "fused" | "sliced";

/**
 * Graph I/O convention (dynamic dims: B batch, S new tokens, P past capacity, N logits rows):
 *  inputs
 *   input_ids                 int64 [B, S]
 *   seqlens_k                 int32 [B]      total length of each sequence minus 1 (GroupQueryAttention)
 *   total_sequence_length     int32 []       max total length over the batch
 *   logits_indices            int64 [N]      rows of the flattened [B*S] hidden states to project to logits
 *   past_key_values.{L}.key   float32 [B, kvH, P, D]
 *   past_key_values.{L}.value float32 [B, kvH, P, D]
 *  outputs
 *   logits                    float32 [N, V]
 *   last_hidden_state         float32 [B, S, H]  after the final RMSNorm (embeddings)
 *   present_new.{L}.key/.value float32 [B, kvH, S, D]  only the rows this call wrote: sequence b's rows
 *                             seqlens_k[b]+1-S .. seqlens_k[b] (K after rotary), for the caller to append to
 *                             its own cache (decode S = 1, or one batch-1 chunk; past rows in `past` itself)
 *  internal: present.{L}.key/.value [B, kvH, max(P, T), D] (GroupQueryAttention's concatenated cache). Not a
 *   graph output: onnxruntime-node would copy all of it back on every step, and an unfetched graph output still
 *   stays allocated for the whole run (a second copy of the cache in ORT's arena). Models built before
 *   present_new listed present.* as outputs; the runner then shares them with `past` (GQA writes in place).
 */
export const pastKeyName = (layer: number) => `past_key_values.${layer}.key`;
export const pastValueName = (layer: number) => `past_key_values.${layer}.value`;
export const presentKeyName = (layer: number) => `present.${layer}.key`;
export const presentValueName = (layer: number) => `present.${layer}.value`;
export const presentNewKeyName = (layer: number) => `present_new.${layer}.key`;
export const presentNewValueName = (layer: number) => `present_new.${layer}.value`;
