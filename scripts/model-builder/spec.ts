/**
 * Validates a checkpoint against what the builder supports and derives the model's dimensions
 * and the exact set of tensors (with shapes) it must contain.
 */
import type { Checkpoint, HfConfig } from "./safetensors";
import { CheckpointError } from "./safetensors";

export interface BuildOptions {
  blockSize: number;
  accuracyLevel: number;
  /** Cap on the context length (defaults to max_position_embeddings). */
  contextLength?: number;
}

export interface ModelSpec {
  architecture: "MixtralForCausalLM" | "MistralForCausalLM";
  moe: boolean;
  hidden: number;
  inter: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  experts: number;
  topK: number;
  vocab: number;
  context: number;
  ropeTheta: number;
  eps: number;
  slidingWindow: number | null;
  bos: number;
  eos: number;
  /** lm_head comes from the embedding table (tie_word_embeddings). */
  tiedLmHead: boolean;
  blockSize: number;
  accuracyLevel: number;
}

const SUPPORTED = ["MixtralForCausalLM", "MistralForCausalLM"] as const;
const BLOCK_SIZES = [16, 32, 64, 128, 256];

export function deriveSpec(cfg: HfConfig, opts: BuildOptions): ModelSpec {
  const arch = cfg.architectures[0];
  if (!(SUPPORTED as readonly string[]).includes(arch)) {
    throw new CheckpointError(`unsupported architecture ${arch} (supported: ${SUPPORTED.join(", ")})`);
  }
  const moe = arch === "MixtralForCausalLM";
  const bs = opts.blockSize;
  if (!BLOCK_SIZES.includes(bs))
    throw new CheckpointError(`--block-size must be one of ${BLOCK_SIZES.join(", ")}, got ${bs}`);
  if (!Number.isInteger(opts.accuracyLevel) || opts.accuracyLevel < 0 || opts.accuracyLevel > 4) {
    throw new CheckpointError(`--accuracy-level must be 0..4, got ${opts.accuracyLevel}`);
  }
  const pos = (v: number | undefined, what: string): number => {
    if (v === undefined || !Number.isInteger(v) || v <= 0)
      throw new CheckpointError(`config.json: ${what} must be a positive integer`);
    return v;
  };
  const hidden = pos(cfg.hidden_size, "hidden_size");
  const heads = pos(cfg.num_attention_heads, "num_attention_heads");
  const kvHeads = pos(cfg.num_key_value_heads, "num_key_value_heads");
  const headDim = cfg.head_dim ?? hidden / heads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new CheckpointError(`config.json: head_dim ${headDim} must be an even integer`);
  }
  if (heads % kvHeads !== 0)
    throw new CheckpointError(
      `config.json: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`,
    );
  const inter = pos(cfg.intermediate_size, "intermediate_size");
  const experts = moe ? pos(cfg.num_local_experts, "num_local_experts") : 0;
  const topK = moe ? pos(cfg.num_experts_per_tok, "num_experts_per_tok") : 0;
  if (moe && topK > experts)
    throw new CheckpointError(`config.json: num_experts_per_tok ${topK} > num_local_experts ${experts}`);
  if (moe && hidden === inter) {
    throw new CheckpointError(
      `hidden_size equal to intermediate_size is ambiguous for ORT's QMoE shape check; unsupported`,
    );
  }
  for (const [what, k] of [
    ["hidden_size", hidden],
    ["intermediate_size", inter],
    ["num_attention_heads * head_dim", heads * headDim],
  ] as const) {
    if (k % bs !== 0) throw new CheckpointError(`${what} ${k} is not divisible by the block size ${bs}`);
  }
  const maxPos = pos(cfg.max_position_embeddings, "max_position_embeddings");
  let context = maxPos;
  if (opts.contextLength !== undefined) {
    if (!Number.isInteger(opts.contextLength) || opts.contextLength <= 0)
      throw new CheckpointError(`--context-length must be a positive integer`);
    if (opts.contextLength > maxPos) {
      throw new CheckpointError(
        `--context-length ${opts.contextLength} exceeds the model's max_position_embeddings ${maxPos}`,
      );
    }
    context = opts.contextLength;
  }
  return {
    architecture: arch as ModelSpec["architecture"],
    moe,
    hidden,
    inter,
    layers: pos(cfg.num_hidden_layers, "num_hidden_layers"),
    heads,
    kvHeads,
    headDim,
    experts,
    topK,
    vocab: pos(cfg.vocab_size, "vocab_size"),
    context,
    ropeTheta: cfg.rope_theta,
    eps: cfg.rms_norm_eps,
    slidingWindow: cfg.sliding_window ?? null,
    bos: cfg.bos_token_id,
    eos: cfg.eos_token_id,
    tiedLmHead: cfg.tie_word_embeddings === true,
    blockSize: bs,
    accuracyLevel: opts.accuracyLevel,
  };
}

/** Every tensor the checkpoint must hold, with its Hugging Face shape [out, in]. */
export function expectedTensors(s: ModelSpec): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const H = s.hidden;
  m.set("model.embed_tokens.weight", [s.vocab, H]);
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    m.set(p + "input_layernorm.weight", [H]);
    m.set(p + "post_attention_layernorm.weight", [H]);
    m.set(p + "self_attn.q_proj.weight", [s.heads * s.headDim, H]);
    m.set(p + "self_attn.k_proj.weight", [s.kvHeads * s.headDim, H]);
    m.set(p + "self_attn.v_proj.weight", [s.kvHeads * s.headDim, H]);
    m.set(p + "self_attn.o_proj.weight", [H, s.heads * s.headDim]);
    if (s.moe) {
      m.set(p + "block_sparse_moe.gate.weight", [s.experts, H]);
      for (let e = 0; e < s.experts; e++) {
        const q = `${p}block_sparse_moe.experts.${e}.`;
        m.set(q + "w1.weight", [s.inter, H]);
        m.set(q + "w3.weight", [s.inter, H]);
        m.set(q + "w2.weight", [H, s.inter]);
      }
    } else {
      m.set(p + "mlp.gate_proj.weight", [s.inter, H]);
      m.set(p + "mlp.up_proj.weight", [s.inter, H]);
      m.set(p + "mlp.down_proj.weight", [H, s.inter]);
    }
  }
  m.set("model.norm.weight", [H]);
  if (!s.tiedLmHead) m.set("lm_head.weight", [s.vocab, H]);
  return m;
}

/** Checks names and shapes; tensors that carry no weights (rotary inv_freq buffers) are ignored. */
export function checkTensors(ckpt: Checkpoint, s: ModelSpec): void {
  const want = expectedTensors(s);
  const missing = [...want.keys()].filter((n) => !ckpt.tensors.has(n));
  if (missing.length) {
    throw new CheckpointError(
      `checkpoint is missing ${missing.length} tensor(s): ${missing.slice(0, 3).join(", ")}${missing.length > 3 ? ", ..." : ""}`,
    );
  }
  const extra = [...ckpt.tensors.keys()].filter((n) => !want.has(n) && !n.endsWith("rotary_emb.inv_freq"));
  // A tied checkpoint may still ship lm_head.weight; it is then used as-is.
  if (extra.length === 1 && extra[0] === "lm_head.weight" && s.tiedLmHead) {
    s.tiedLmHead = false;
    want.set("lm_head.weight", [s.vocab, s.hidden]);
  } else if (extra.length) {
    throw new CheckpointError(
      `checkpoint has ${extra.length} unexpected tensor(s) for ${s.architecture}: ${extra.slice(0, 3).join(", ")}${extra.length > 3 ? ", ..." : ""}`,
    );
  }
  for (const [name, shape] of want) {
    const t = ckpt.tensors.get(name)!;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new CheckpointError(
        `tensor ${name} has shape [${t.shape.join(", ")}], expected [${shape.join(", ")}] from config.json`,
      );
    }
  }
}
