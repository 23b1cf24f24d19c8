/** Synthetic dev/perf model presets (Hugging Face config.json fields). */
import type { HfConfig } from "./safetensors";

export interface Preset {
  config: HfConfig;
  seed: number;
  shards: number;
}

const common = {
  vocab_size: 32000,
  bos_token_id: 1,
  eos_token_id: 2,
  max_position_embeddings: 4096,
  rope_theta: 1e6,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: false,
};

export const PRESETS: Record<string, Preset> = {
  /** Dense Mistral with a sliding window (the mistral-tiny tier). */
  tiny: {
    seed: 1,
    shards: 1,
    config: {
      ...common,
      architectures: ["MistralForCausalLM"],
      model_type: "mistral",
      hidden_size: 256,
      intermediate_size: 704,
      num_hidden_layers: 2,
      num_attention_heads: 8,
      num_key_value_heads: 2,
      head_dim: 32,
      sliding_window: 512,
    },
  },
  /** Mixtral-style MoE, 8 experts top-2 (mistral-small tier). */
  small: {
    seed: 2,
    shards: 1,
    config: {
      ...common,
      architectures: ["MixtralForCausalLM"],
      model_type: "mixtral",
      hidden_size: 256,
      intermediate_size: 704,
      num_hidden_layers: 4,
      num_attention_heads: 8,
      num_key_value_heads: 2,
      head_dim: 32,
      num_local_experts: 8,
      num_experts_per_tok: 2,
      sliding_window: null,
    },
  },
  /** Larger MoE, written as sharded safetensors (mistral-medium tier). */
  medium: {
    seed: 3,
    shards: 3,
    config: {
      ...common,
      architectures: ["MixtralForCausalLM"],
      model_type: "mixtral",
      hidden_size: 512,
      intermediate_size: 1792,
      num_hidden_layers: 6,
      num_attention_heads: 8,
      num_key_value_heads: 2,
      head_dim: 64,
      num_local_experts: 8,
      num_experts_per_tok: 2,
      sliding_window: null,
    },
  },
  /** Engine benchmark model (about 1.6 GB bf16); built on demand only. */
  perf: {
    seed: 4,
    shards: 2,
    config: {
      ...common,
      architectures: ["MixtralForCausalLM"],
      model_type: "mixtral",
      hidden_size: 1024,
      intermediate_size: 3584,
      num_hidden_layers: 8,
      num_attention_heads: 16,
      num_key_value_heads: 4,
      head_dim: 64,
      num_local_experts: 8,
      num_experts_per_tok: 2,
      sliding_window: null,
    },
  },
};

export const DEFAULT_PRESETS = ["tiny", "small", "medium"];
