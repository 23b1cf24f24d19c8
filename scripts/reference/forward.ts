/**
 * fp32 reference forward pass for MixtralForCausalLM and MistralForCausalLM, written from the
 * Hugging Face modeling code's math (not from the ONNX graph) so it can judge the graph. One prompt,
 * no KV cache; returns logits and final hidden states at every position. Tiny models only.
 */
import type { HfConfig } from "../model-builder/safetensors";
import { applyRope, attention, linear, rmsNorm, routeTopK, ropeInvFreq, silu } from "./math";
import type { WeightTransform } from "./quant";

/** Anything that yields a checkpoint tensor as float32 by its Hugging Face name. */
export type WeightSource = (name: string) => Promise<Float32Array>;

export interface ReferenceOptions {
  /** Applied to every weight as it is read, e.g. int4WeightTransform() to run on dequantized int4 weights. */
  weightTransform?: WeightTransform;
}

export interface ReferenceResult {
  /** [S, V] */
  logits: Float32Array;
  /** [S, H] after the final RMSNorm */
  hidden: Float32Array;
}

export type ReferenceConfig = Pick<
  HfConfig,
  | "architectures"
  | "hidden_size"
  | "intermediate_size"
  | "num_hidden_layers"
  | "num_attention_heads"
  | "num_key_value_heads"
  | "head_dim"
  | "num_local_experts"
  | "num_experts_per_tok"
  | "vocab_size"
  | "rope_theta"
  | "rms_norm_eps"
  | "sliding_window"
  | "tie_word_embeddings"
>;

export async function referenceForward(
  cfg: ReferenceConfig,
  source: WeightSource,
  ids: readonly number[],
  opts: ReferenceOptions = {},
): Promise<ReferenceResult> {
  const arch = cfg.architectures[0];
  const moe = arch === "MixtralForCausalLM";
  if (!moe && arch !== "MistralForCausalLM") throw new Error(`reference: unsupported architecture ${arch}`);
  const H = cfg.hidden_size;
  const I = cfg.intermediate_size;
  const nH = cfg.num_attention_heads;
  const nKV = cfg.num_key_value_heads;
  const D = cfg.head_dim ?? H / nH;
  const V = cfg.vocab_size;
  const S = ids.length;
  const eps = cfg.rms_norm_eps;
  for (const id of ids)
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`reference: token id ${id} out of range [0, ${V})`);

  const weight = async (name: string, shape: number[], readAs = name): Promise<Float32Array> => {
    const w = await source(readAs);
    const n = shape.reduce((a, b) => a * b, 1);
    if (w.length !== n) throw new Error(`reference: ${readAs} has ${w.length} values, expected [${shape.join(", ")}]`);
    return opts.weightTransform ? opts.weightTransform(name, w, shape) : w;
  };

  const embed = await weight("model.embed_tokens.weight", [V, H]);
  const h = new Float32Array(S * H);
  for (let s = 0; s < S; s++) h.set(embed.subarray(ids[s] * H, ids[s] * H + H), s * H);

  const invFreq = ropeInvFreq(D, cfg.rope_theta);
  const addInto = (dst: Float32Array, src: Float32Array) => {
    for (let i = 0; i < dst.length; i++) dst[i] += src[i];
  };

  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    // Attention block
    const x = rmsNorm(h, S, H, await weight(`${p}.input_layernorm.weight`, [H]), eps);
    const q = linear(x, S, await weight(`${p}.self_attn.q_proj.weight`, [nH * D, H]), nH * D, H);
    const k = linear(x, S, await weight(`${p}.self_attn.k_proj.weight`, [nKV * D, H]), nKV * D, H);
    const v = linear(x, S, await weight(`${p}.self_attn.v_proj.weight`, [nKV * D, H]), nKV * D, H);
    for (let s = 0; s < S; s++) {
      for (let hh = 0; hh < nH; hh++) applyRope(q, (s * nH + hh) * D, D, s, invFreq);
      for (let hh = 0; hh < nKV; hh++) applyRope(k, (s * nKV + hh) * D, D, s, invFreq);
    }
    const a = attention(q, k, v, S, nH, nKV, D, cfg.sliding_window);
    addInto(h, linear(a, S, await weight(`${p}.self_attn.o_proj.weight`, [H, nH * D]), H, nH * D));

    // MLP / MoE block
    const y = rmsNorm(h, S, H, await weight(`${p}.post_attention_layernorm.weight`, [H]), eps);
    if (moe) {
      addInto(h, await moeBlock(cfg, p, y, S, weight));
    } else {
      const g = linear(y, S, await weight(`${p}.mlp.gate_proj.weight`, [I, H]), I, H);
      const u = linear(y, S, await weight(`${p}.mlp.up_proj.weight`, [I, H]), I, H);
      for (let i = 0; i < g.length; i++) g[i] = silu(g[i]) * u[i];
      addInto(h, linear(g, S, await weight(`${p}.mlp.down_proj.weight`, [H, I]), H, I));
    }
  }

  const hidden = rmsNorm(h, S, H, await weight("model.norm.weight", [H]), eps);
  const head = cfg.tie_word_embeddings
    ? await weight("lm_head.weight", [V, H], "model.embed_tokens.weight")
    : await weight("lm_head.weight", [V, H]);
  return { logits: linear(hidden, S, head, V, H), hidden };
}

type WeightFn = (name: string, shape: number[]) => Promise<Float32Array>;

/** Mixtral sparse MoE: route each token to its top-k experts, sum w·expert(x) with expert(x) = w2(silu(w1 x) ⊙ w3 x). */
async function moeBlock(
  cfg: ReferenceConfig,
  p: string,
  y: Float32Array,
  S: number,
  weight: WeightFn,
): Promise<Float32Array> {
  const H = cfg.hidden_size;
  const I = cfg.intermediate_size;
  const E = cfg.num_local_experts ?? 0;
  const K = cfg.num_experts_per_tok ?? 2;
  if (E < 1) throw new Error("reference: MixtralForCausalLM needs num_local_experts");
  const router = linear(y, S, await weight(`${p}.block_sparse_moe.gate.weight`, [E, H]), E, H);
  const experts: { w1: Float32Array; w2: Float32Array; w3: Float32Array }[] = [];
  for (let e = 0; e < E; e++) {
    const q = `${p}.block_sparse_moe.experts.${e}`;
    experts.push({
      w1: await weight(`${q}.w1.weight`, [I, H]),
      w2: await weight(`${q}.w2.weight`, [H, I]),
      w3: await weight(`${q}.w3.weight`, [I, H]),
    });
  }
  const out = new Float32Array(S * H);
  for (let s = 0; s < S; s++) {
    const xs = y.subarray(s * H, s * H + H);
    const route = routeTopK(router.subarray(s * E, s * E + E), K);
    for (let r = 0; r < route.experts.length; r++) {
      const ex = experts[route.experts[r]];
      const g = linear(xs, 1, ex.w1, I, H);
      const u = linear(xs, 1, ex.w3, I, H);
      for (let i = 0; i < I; i++) g[i] = silu(g[i]) * u[i];
      const o = linear(g, 1, ex.w2, H, I);
      const wgt = route.weights[r];
      for (let i = 0; i < H; i++) out[s * H + i] += wgt * o[i];
    }
  }
  return out;
}
