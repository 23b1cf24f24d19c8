/**
 * npx tsx scripts/bench/gguf-export.ts --hf models/hf/perf --out perf.Q4_0.gguf [--type q4_0|f16] [--output-type q6_k|q8_0|q4_0|f16]
 * Converts a Hugging Face Mixtral (or dense Mistral) checkpoint into the GGUF file llama.cpp would run after
 * `convert_hf_to_gguf.py` and `llama-quantize ... Q4_0`, so llama.cpp can be measured on the very weights
 * the project's engine serves:
 *  - architecture `llama` (llama.cpp loads Mixtral as llama with `llama.expert_count`), ggml tensor names;
 *  - q_proj/k_proj rows permuted back from Hugging Face's rotate-half RoPE layout to llama.cpp's
 *    interleaved pairs (convert_hf_to_gguf.py's LlamaModel.permute);
 *  - experts merged into one 3-D tensor per projection (ggml dims [in, out, n_expert]);
 *  - matrices and token_embd Q4_0, output.weight Q6_K (Q8_0 where the row is not whole 256-blocks), as
 *    llama-quantize's Q4_0 defaults; norms and the router F32;
 *  - the project's SentencePiece vocabulary (Mistral v1) as `tokenizer.ggml.*`.
 * The file carries `moe_edge.source_checksum` (the checksum the ONNX build writes into model.json) and
 * `moe_edge.export` (this export's settings), so a cached export can be matched to its source and to the
 * ONNX model without reading any weights.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { FIRST_NORMAL_ID, UNK_ID, BOS_ID, EOS_ID, VOCAB_SIZE } from "../../worker/tokenizer/vocab-layout";
import { SPACE, getVocab } from "../../worker/tokenizer/vocab";
import { parseCli, runCli, UsageError } from "../lib/cli";
import { sourceChecksum } from "../model-builder/build";
import { type Checkpoint, openCheckpoint } from "../model-builder/safetensors";
import { GGML, type GgmlType, encode, typeName } from "./ggml-quant";
import { type GgufTensorSpec, type GgufValue, writeGguf } from "./gguf-writer";

/** Bumped when the export's output changes for the same checkpoint. */
const EXPORT_FORMAT = 1;
/** llama_ftype: LLAMA_FTYPE_MOSTLY_F16 1, LLAMA_FTYPE_MOSTLY_Q4_0 2. */
const FTYPE = { f16: 1, q4_0: 2 } as const;
/** llama_token_type: NORMAL 1, UNKNOWN 2, CONTROL 3, BYTE 6. */
const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, BYTE: 6 } as const;

export type OutputType = "q6_k" | "q8_0" | "q4_0" | "f16";
export type MatrixType = "q4_0" | "f16";

export interface ExportOptions {
  /** The matrices' (and token_embd's) encoding: q4_0 (default), or f16 to check the layout without rounding noise. */
  matrixType?: MatrixType;
  /** output.weight's encoding; default q6_k, as llama-quantize's Q4_0 (Q8_0 when rows are not 256-blocks). */
  outputType?: OutputType;
  /** Applied to every checkpoint tensor as it is read (the export check sharpens attention with it). */
  transform?: (name: string, w: Float32Array) => Float32Array;
  /** One line per written tensor group. */
  onProgress?: (line: string) => void;
}

export interface ExportResult {
  file: string;
  bytes: number;
  tensors: number;
  sourceChecksum: string;
  /** The `moe_edge.export` value: format version and encodings. */
  exportKey: string;
}

/**
 * Hugging Face rotate-half rows -> llama.cpp interleaved rows (LlamaModel.permute): inside each head of
 * `headDim` rows, new row 2i+j is old row j*headDim/2 + i. `w` is row-major [rows, cols].
 */
export function permuteRope(w: Float32Array, rows: number, cols: number, nHeads: number): Float32Array {
  const hd = rows / nHeads;
  if (!Number.isInteger(hd) || hd % 2) throw new Error(`permute: ${rows} rows do not split into ${nHeads} even heads`);
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++)
    for (let i = 0; i < hd / 2; i++)
      for (let j = 0; j < 2; j++) {
        const src = (h * hd + j * (hd / 2) + i) * cols;
        out.set(w.subarray(src, src + cols), (h * hd + 2 * i + j) * cols);
      }
  return out;
}

/** What `moe_edge.export` says for these settings; a cached file with another value is stale. */
export function exportKey(matrixType: MatrixType = "q4_0", outputType?: OutputType): string {
  return `format ${EXPORT_FORMAT}, matrices ${matrixType}, output ${outputType ?? (matrixType === "f16" ? "f16" : "q6_k")}`;
}

/** tokenizer.ggml.* for Mistral v1's SentencePiece model, built from the project's vocabulary tables. */
function tokenizerKvs(): Array<[string, GgufValue]> {
  const { pieces } = getVocab();
  const scores = new Float32Array(VOCAB_SIZE);
  const types = new Int32Array(VOCAB_SIZE);
  for (let id = 0; id < VOCAB_SIZE; id++) {
    if (id === UNK_ID) types[id] = TOKEN_TYPE.UNKNOWN;
    else if (id === BOS_ID || id === EOS_ID) types[id] = TOKEN_TYPE.CONTROL;
    else if (id < FIRST_NORMAL_ID) types[id] = TOKEN_TYPE.BYTE;
    else {
      types[id] = TOKEN_TYPE.NORMAL;
      // tokenizer.model's scores (see worker/tokenizer/vocab.ts): -(id - 259), or -1e9 for all-"▁" pieces.
      scores[id] = [...pieces[id]].every((c) => c === SPACE) ? -1e9 : -(id - FIRST_NORMAL_ID);
    }
  }
  return [
    ["tokenizer.ggml.model", { type: "string", value: "llama" }],
    ["tokenizer.ggml.pre", { type: "string", value: "default" }],
    ["tokenizer.ggml.tokens", { type: "string[]", value: pieces }],
    ["tokenizer.ggml.scores", { type: "f32[]", value: scores }],
    ["tokenizer.ggml.token_type", { type: "i32[]", value: types }],
    ["tokenizer.ggml.bos_token_id", { type: "u32", value: BOS_ID }],
    ["tokenizer.ggml.eos_token_id", { type: "u32", value: EOS_ID }],
    ["tokenizer.ggml.unknown_token_id", { type: "u32", value: UNK_ID }],
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: true }],
    ["tokenizer.ggml.add_eos_token", { type: "bool", value: false }],
  ];
}

interface Planned extends GgufTensorSpec {
  produce: () => Promise<Uint8Array>;
}

const OUTPUT_TYPES: Record<OutputType, GgmlType> = { q6_k: GGML.Q6_K, q8_0: GGML.Q8_0, q4_0: GGML.Q4_0, f16: GGML.F16 };

function plan(ckpt: Checkpoint, matrixType: MatrixType, outputType: OutputType, opts: ExportOptions): Planned[] {
  const M = matrixType === "f16" ? GGML.F16 : GGML.Q4_0;
  const c = ckpt.config;
  const H = c.hidden_size;
  const nH = c.num_attention_heads;
  const nKV = c.num_key_value_heads;
  const E = c.num_local_experts ?? 0;
  const has = (n: string) => ckpt.tensors.has(n);
  const read = async (n: string) => {
    const w = await ckpt.readF32(n);
    return opts.transform ? opts.transform(n, w) : w;
  };
  const shape = (n: string) => {
    const t = ckpt.tensors.get(n);
    if (!t) throw new Error(`missing tensor ${n}`);
    return t.shape;
  };
  /** A 1-D or 2-D checkpoint tensor, optionally row-permuted, encoded as `type`. */
  const single = (name: string, src: string, type: GgmlType, permuteHeads = 0): Planned => {
    const s = shape(src);
    return {
      name,
      dims: [...s].reverse(),
      type,
      produce: async () => {
        let w = await read(src);
        if (permuteHeads) w = permuteRope(w, s[0], s[1], permuteHeads);
        return encode(type, w);
      },
    };
  };
  /** E expert matrices [out, in] stacked into ggml [in, out, E], each encoded as `type`. */
  const merged = (name: string, srcs: string[], type: GgmlType): Planned => {
    const s = shape(srcs[0]);
    return {
      name,
      dims: [s[1], s[0], srcs.length],
      type,
      produce: async () => {
        const parts: Uint8Array[] = [];
        for (const src of srcs) parts.push(encode(type, await read(src)));
        return Buffer.concat(parts);
      },
    };
  };
  const tied = c.tie_word_embeddings === true || !has("lm_head.weight");
  const outType = OUTPUT_TYPES[outputType];
  // llama-quantize: the output tensor falls back to Q8_0 when its rows are not whole blocks of the K type.
  const outputEncoding = outType === GGML.Q6_K && H % 256 ? GGML.Q8_0 : outType;
  const t: Planned[] = [
    // Tied embeddings are quantized as the output tensor (llama-quantize does the same).
    single("token_embd.weight", "model.embed_tokens.weight", tied ? outputEncoding : M),
  ];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    const b = `blk.${l}`;
    t.push(
      single(`${b}.attn_norm.weight`, `${p}.input_layernorm.weight`, GGML.F32),
      single(`${b}.attn_q.weight`, `${p}.self_attn.q_proj.weight`, M, nH),
      single(`${b}.attn_k.weight`, `${p}.self_attn.k_proj.weight`, M, nKV),
      single(`${b}.attn_v.weight`, `${p}.self_attn.v_proj.weight`, M),
      single(`${b}.attn_output.weight`, `${p}.self_attn.o_proj.weight`, M),
      single(`${b}.ffn_norm.weight`, `${p}.post_attention_layernorm.weight`, GGML.F32),
    );
    if (E > 0) {
      const ex = (w: string) => Array.from({ length: E }, (_, e) => `${p}.block_sparse_moe.experts.${e}.${w}.weight`);
      t.push(
        single(`${b}.ffn_gate_inp.weight`, `${p}.block_sparse_moe.gate.weight`, GGML.F32),
        merged(`${b}.ffn_gate_exps.weight`, ex("w1"), M),
        merged(`${b}.ffn_down_exps.weight`, ex("w2"), M),
        merged(`${b}.ffn_up_exps.weight`, ex("w3"), M),
      );
    } else {
      t.push(
        single(`${b}.ffn_gate.weight`, `${p}.mlp.gate_proj.weight`, M),
        single(`${b}.ffn_down.weight`, `${p}.mlp.down_proj.weight`, M),
        single(`${b}.ffn_up.weight`, `${p}.mlp.up_proj.weight`, M),
      );
    }
  }
  t.push(single("output_norm.weight", "model.norm.weight", GGML.F32));
  if (!tied) t.push(single("output.weight", "lm_head.weight", outputEncoding));
  return t;
}

/** Exports the checkpoint in `hfDir` to `outFile` (see the file comment). */
export async function exportGguf(hfDir: string, outFile: string, opts: ExportOptions = {}): Promise<ExportResult> {
  const matrixType = opts.matrixType ?? "q4_0";
  const outputType = opts.outputType ?? (matrixType === "f16" ? "f16" : "q6_k");
  const ckpt = await openCheckpoint(hfDir);
  try {
    const c = ckpt.config;
    const arch = c.architectures[0];
    if (arch !== "MixtralForCausalLM" && arch !== "MistralForCausalLM") {
      throw new Error(`gguf export: unsupported architecture ${arch} (MixtralForCausalLM or MistralForCausalLM)`);
    }
    if (c.vocab_size !== VOCAB_SIZE) {
      throw new Error(`gguf export: vocab_size ${c.vocab_size}, but the bundled tokenizer has ${VOCAB_SIZE} pieces`);
    }
    const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
    const E = c.num_local_experts ?? 0;
    const checksum = sourceChecksum(ckpt);
    const key = exportKey(matrixType, outputType);
    const u32 = (value: number): GgufValue => ({ type: "u32", value });
    const kvs: Array<[string, GgufValue]> = [
      ["general.architecture", { type: "string", value: "llama" }],
      ["general.name", { type: "string", value: path.basename(path.resolve(hfDir)) }],
      ["general.file_type", u32(FTYPE[matrixType])],
      ["general.quantization_version", u32(2)],
      ["llama.vocab_size", u32(c.vocab_size)],
      ["llama.context_length", u32(c.max_position_embeddings)],
      ["llama.embedding_length", u32(c.hidden_size)],
      ["llama.block_count", u32(c.num_hidden_layers)],
      ["llama.feed_forward_length", u32(c.intermediate_size)],
      ["llama.attention.head_count", u32(c.num_attention_heads)],
      ["llama.attention.head_count_kv", u32(c.num_key_value_heads)],
      ["llama.attention.key_length", u32(headDim)],
      ["llama.attention.value_length", u32(headDim)],
      ["llama.rope.dimension_count", u32(headDim)],
      ["llama.rope.freq_base", { type: "f32", value: c.rope_theta }],
      ["llama.attention.layer_norm_rms_epsilon", { type: "f32", value: c.rms_norm_eps }],
      ...(E > 0
        ? ([
            ["llama.expert_count", u32(E)],
            ["llama.expert_used_count", u32(c.num_experts_per_tok ?? 2)],
          ] as Array<[string, GgufValue]>)
        : []),
      ...tokenizerKvs(),
      ["moe_edge.source_checksum", { type: "string", value: checksum }],
      ["moe_edge.export", { type: "string", value: key }],
    ];
    const tensors = plan(ckpt, matrixType, outputType, opts);
    await mkdir(path.dirname(path.resolve(outFile)), { recursive: true });
    const { bytes } = await writeGguf(outFile, kvs, tensors, async (i) => {
      const data = await tensors[i].produce();
      if (tensors[i].name.endsWith("ffn_up_exps.weight") || !E)
        opts.onProgress?.(`${tensors[i].name} ${typeName(tensors[i].type)} [${tensors[i].dims.join(", ")}]`);
      return data;
    });
    return { file: outFile, bytes, tensors: tensors.length, sourceChecksum: checksum, exportKey: key };
  } finally {
    await ckpt.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseCli("gguf-export", process.argv.slice(2), {
    usage:
      "usage: npx tsx scripts/bench/gguf-export.ts --hf <checkpoint dir> --out <file.gguf> [--type q4_0|f16] [--output-type q6_k|q8_0|q4_0|f16]",
    options: {
      hf: { type: "string", default: "models/hf/perf" },
      out: { type: "string" },
      type: { type: "string", default: "q4_0" },
      "output-type": { type: "string" },
    },
  });
  runCli("gguf-export", async () => {
    const mt = values.type as MatrixType;
    if (mt !== "q4_0" && mt !== "f16") throw new UsageError("--type must be q4_0 or f16");
    const ot = values["output-type"] as OutputType | undefined;
    if (ot !== undefined && !(ot in OUTPUT_TYPES))
      throw new UsageError(`--output-type must be one of ${Object.keys(OUTPUT_TYPES).join(", ")}`);
    const out = values.out ?? `${path.basename(path.resolve(values.hf!))}.${mt.toUpperCase()}.gguf`;
    const t0 = performance.now();
    const r = await exportGguf(values.hf!, out, {
      matrixType: mt,
      outputType: ot,
      onProgress: (l) => console.error(l),
    });
    console.log(
      `${r.file}: ${(r.bytes / 2 ** 20).toFixed(1)} MiB, ${r.tensors} tensors (${r.exportKey}), ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  });
}
