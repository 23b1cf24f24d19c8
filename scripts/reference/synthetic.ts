/**
 * Seeded synthetic Hugging Face checkpoints (config.json + model.safetensors) for Mixtral/Mistral
 * with arbitrary shapes, for correctness tests. Weights are scaled like a trained model's
 * activations (≈ unit RMS through each layer) so logits are far from uniform and top-1 means something.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { mulberry32 } from "../../gpu-backend/engine/rng";

export interface SyntheticConfig {
  architecture: "MixtralForCausalLM" | "MistralForCausalLM";
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  /** Mixtral only. */
  experts?: number;
  topK?: number;
  vocab: number;
  slidingWindow: number | null;
  ropeTheta?: number;
  maxPositions?: number;
  tieEmbeddings?: boolean;
  /** Mixtral only: these experts' router rows are copies of the first one's, so their logits tie exactly. */
  tiedRouterExperts?: number[];
}

const rng = mulberry32;

function gaussian(n: number, std: number, mean: number, next: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(next(), 1e-12);
    const v = next();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = mean + r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = mean + r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

function toBf16(x: Float32Array): Uint8Array {
  const u32 = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const b = u32[i];
    out[i] = (b + 0x7fff + ((b >> 16) & 1)) >>> 16; // round to nearest even
  }
  return new Uint8Array(out.buffer);
}

export function hfConfigJson(c: SyntheticConfig): Record<string, unknown> {
  const base: Record<string, unknown> = {
    architectures: [c.architecture],
    model_type: c.architecture === "MixtralForCausalLM" ? "mixtral" : "mistral",
    hidden_size: c.hidden,
    intermediate_size: c.intermediate,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
    vocab_size: c.vocab,
    max_position_embeddings: c.maxPositions ?? 256,
    rope_theta: c.ropeTheta ?? 1e6,
    rms_norm_eps: 1e-5,
    sliding_window: c.slidingWindow,
    bos_token_id: 1,
    eos_token_id: 2,
    tie_word_embeddings: c.tieEmbeddings ?? false,
    torch_dtype: "bfloat16",
    hidden_act: "silu",
  };
  if (c.architecture === "MixtralForCausalLM") {
    base.num_local_experts = c.experts;
    base.num_experts_per_tok = c.topK ?? 2;
  }
  return base;
}

/** Tensor name -> [shape, std, mean] in the Hugging Face layout ([out, in] for Linear). */
function tensorPlan(c: SyntheticConfig): [string, number[], number, number][] {
  const D = c.hidden / c.heads;
  const H = c.hidden;
  const I = c.intermediate;
  const lin = (out: number, inp: number): [number[], number, number] => [[out, inp], 1 / Math.sqrt(inp), 0];
  const plan: [string, number[], number, number][] = [["model.embed_tokens.weight", [c.vocab, H], 1, 0]];
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    plan.push([`${p}.input_layernorm.weight`, [H], 0.1, 1]);
    plan.push([`${p}.self_attn.q_proj.weight`, ...lin(c.heads * D, H)]);
    plan.push([`${p}.self_attn.k_proj.weight`, ...lin(c.kvHeads * D, H)]);
    plan.push([`${p}.self_attn.v_proj.weight`, ...lin(c.kvHeads * D, H)]);
    plan.push([`${p}.self_attn.o_proj.weight`, ...lin(H, c.heads * D)]);
    plan.push([`${p}.post_attention_layernorm.weight`, [H], 0.1, 1]);
    if (c.architecture === "MixtralForCausalLM") {
      const E = c.experts ?? 8;
      // A sharper router (std 1) gives decisive, varied expert choices rather than near-ties.
      plan.push([`${p}.block_sparse_moe.gate.weight`, [E, H], 1, 0]);
      for (let e = 0; e < E; e++) {
        const q = `${p}.block_sparse_moe.experts.${e}`;
        plan.push([`${q}.w1.weight`, ...lin(I, H)], [`${q}.w2.weight`, ...lin(H, I)], [`${q}.w3.weight`, ...lin(I, H)]);
      }
    } else {
      plan.push(
        [`${p}.mlp.gate_proj.weight`, ...lin(I, H)],
        [`${p}.mlp.up_proj.weight`, ...lin(I, H)],
        [`${p}.mlp.down_proj.weight`, ...lin(H, I)],
      );
    }
  }
  plan.push(["model.norm.weight", [H], 0.1, 1]);
  if (!c.tieEmbeddings) plan.push(["lm_head.weight", ...lin(c.vocab, H)]);
  return plan;
}

/** Writes config.json and a single bf16 (or f32) model.safetensors into `dir`. */
export async function writeSyntheticCheckpoint(
  dir: string,
  c: SyntheticConfig,
  opts: { seed?: number; dtype?: "BF16" | "F32" } = {},
): Promise<void> {
  const dtype = opts.dtype ?? "BF16";
  const next = rng(opts.seed ?? 1234);
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  const blobs: Uint8Array[] = [];
  let offset = 0;
  const tied = c.tiedRouterExperts ?? [];
  for (const [name, shape, std, mean] of tensorPlan(c)) {
    const values = gaussian(
      shape.reduce((a, b) => a * b, 1),
      std,
      mean,
      next,
    );
    if (tied.length > 1 && name.endsWith("block_sparse_moe.gate.weight")) {
      const H = shape[1]!;
      const first = values.slice(tied[0]! * H, (tied[0]! + 1) * H);
      for (const e of tied.slice(1)) values.set(first, e * H);
    }
    const bytes = dtype === "BF16" ? toBf16(values) : new Uint8Array(values.buffer);
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes.length] };
    blobs.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8); // data section 8-byte aligned, as safetensors writers do
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "config.json"), JSON.stringify(hfConfigJson(c), null, 2));
  await writeFile(path.join(dir, "model.safetensors"), Buffer.concat([len, Buffer.from(json), ...blobs]));
}
