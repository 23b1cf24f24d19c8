/**
 * The GGUF export (scripts/bench/gguf-export.ts) without llama.cpp: the tiny preset and a small synthetic
 * Mixtral are exported, read back with the GGUF reader, and checked against their checkpoints: header,
 * metadata, tensor names/dims/types, 32-byte alignment, Q4_0/Q6_K values within their quantization step,
 * the merged expert layout, and the Q/K row permutation (by hand, and by RoPE: llama.cpp's interleaved
 * rotation of the permuted rows is Hugging Face's rotate-half rotation of the original ones).
 */
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  GGML,
  dequantizeQ4_0,
  dequantizeQ6_K,
  dequantizeQ8_0,
  f16ToF32,
  f32ToF16,
  quantizeQ4_0,
  quantizeQ8_0,
} from "../../scripts/bench/ggml-quant";
import { exportGguf, permuteRope } from "../../scripts/bench/gguf-export";
import { type GgufFile, readGgufHeader, readGgufTensor } from "../../scripts/bench/gguf-reader";
import { openCheckpoint } from "../../scripts/model-builder/safetensors";
import { applyRope, ropeInvFreq } from "../../scripts/reference/math";
import { writeSyntheticCheckpoint } from "../../scripts/reference/synthetic";
import { devModel } from "./engine-helpers";

const root = path.resolve(import.meta.dirname, "../..");
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), "gguf-export-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Largest |a - b| over the elements, each divided by its Q4_0 block's step |d| (so <= 1 is "within a step"). */
function q4Steps(q: Uint8Array, want: Float32Array): number {
  const got = dequantizeQ4_0(q, want.length);
  const view = new DataView(q.buffer, q.byteOffset, q.byteLength);
  let worst = 0;
  for (let b = 0; b < want.length / 32; b++) {
    const d = Math.abs(f16ToF32(view.getUint16(b * 18, true)));
    for (let j = 0; j < 32; j++) {
      const err = Math.abs(got[b * 32 + j] - want[b * 32 + j]);
      worst = Math.max(worst, d ? err / d : err === 0 ? 0 : Infinity);
    }
  }
  return worst;
}

describe("ggml encodings", () => {
  it("f16 conversion rounds to nearest even and keeps subnormals", () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(-2)).toBe(0xc000);
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(1e6)).toBe(0x7c00);
    expect(f32ToF16(2 ** -24)).toBe(1);
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even (up)
    for (const x of [0.1, -3.25, 1e-5, 2 ** -20, 1234.5])
      expect(Math.abs(f16ToF32(f32ToF16(x)) - x)).toBeLessThan(Math.abs(x) * 2 ** -10 + 2 ** -25);
  });

  it("Q4_0 follows quantize_row_q4_0_ref on a hand-worked block", () => {
    // max |x| is -8 at index 0, so d = -8 / -8 = 1 and q = min(15, floor(x + 8.5)).
    const x = new Float32Array(32);
    x[0] = -8;
    x[1] = 7.9; // 16.4 -> clamped to 15
    x[16] = 0.5; // 9.0 -> 9
    x[17] = -0.6; // 7.9 -> 7
    const q = quantizeQ4_0(x);
    expect(f16ToF32(q[0] | (q[1] << 8))).toBe(1);
    expect(q[2] & 0xf).toBe(0);
    expect(q[3] & 0xf).toBe(15);
    expect(q[2] >> 4).toBe(9);
    expect(q[3] >> 4).toBe(7);
    expect(q[4]).toBe(8 | (8 << 4)); // zeros sit at 8
  });

  it("Q8_0 round-trips within half a step", () => {
    const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 1.7) * (i + 1));
    const y = dequantizeQ8_0(quantizeQ8_0(x), x.length);
    for (let b = 0; b < 2; b++) {
      const d = Math.max(...x.subarray(b * 32, b * 32 + 32).map(Math.abs)) / 127;
      for (let j = 0; j < 32; j++) expect(Math.abs(y[b * 32 + j] - x[b * 32 + j])).toBeLessThanOrEqual(d * 0.51);
    }
  });
});

describe("Q/K permutation", () => {
  it("matches convert_hf_to_gguf.py's permute on hand-worked rows", () => {
    const rows = (n: number) => Float32Array.from({ length: n }, (_, i) => i);
    // One head of 8 rows: pairs (i, i + 4) become neighbours.
    expect([...permuteRope(rows(8), 8, 1, 1)]).toEqual([0, 4, 1, 5, 2, 6, 3, 7]);
    // Two heads of 4 rows, permuted within each head.
    expect([...permuteRope(rows(8), 8, 1, 2)]).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
    // Whole rows move: 4 rows of 2 columns, one head.
    expect([...permuteRope(rows(8), 4, 2, 1)]).toEqual([0, 1, 4, 5, 2, 3, 6, 7]);
  });

  it("turns Hugging Face's rotate-half RoPE into llama.cpp's interleaved RoPE", () => {
    const hd = 16;
    const heads = 2;
    const inv = ropeInvFreq(hd, 10000);
    const q = Float32Array.from({ length: hd * heads }, (_, i) => Math.cos(i * 0.37) + i / 10);
    for (const pos of [0, 1, 7, 300]) {
      const hf = q.slice();
      for (let h = 0; h < heads; h++) applyRope(hf, h * hd, hd, pos, inv);
      // ggml's rope in NORM mode (LLAMA_ROPE_TYPE_NORM): pairs (2i, 2i+1), angle pos * theta^(-2i/d).
      const ll = permuteRope(q, hd * heads, 1, heads);
      for (let h = 0; h < heads; h++)
        for (let i = 0; i < hd / 2; i++) {
          const a = pos * inv[i];
          const [x0, x1] = [ll[h * hd + 2 * i], ll[h * hd + 2 * i + 1]];
          ll[h * hd + 2 * i] = x0 * Math.cos(a) - x1 * Math.sin(a);
          ll[h * hd + 2 * i + 1] = x0 * Math.sin(a) + x1 * Math.cos(a);
        }
      const want = permuteRope(hf, hd * heads, 1, heads);
      for (let i = 0; i < want.length; i++) expect(ll[i]).toBeCloseTo(want[i], 5);
    }
  });
});

/** Checks the file's layout: aligned offsets, contiguous data, and the file size. */
async function checkLayout(file: string, g: GgufFile): Promise<void> {
  expect(g.version).toBe(3);
  expect(g.dataOffset % 32).toBe(0);
  let expected = 0;
  for (const t of g.tensors) {
    expect(t.offset % 32, t.name).toBe(0);
    expect(t.offset, t.name).toBe(expected);
    const n = t.dims.reduce((a, b) => a * b, 1);
    const bytes = t.type === GGML.F32 ? n * 4 : t.type === GGML.Q4_0 ? (n / 32) * 18 : (n / 256) * 210;
    expected = Math.ceil((t.offset + bytes) / 32) * 32;
  }
  expect((await stat(file)).size).toBe(g.dataOffset + expected);
}

describe("tiny preset (dense Mistral)", () => {
  const hf = path.join(root, "models/hf/tiny");
  let file: string;
  let g: GgufFile;
  beforeAll(async () => {
    devModel("tiny"); // the global setup built it; fail early with the builder's message otherwise
    file = path.join(tmp, "tiny.gguf");
    await exportGguf(hf, file);
    g = await readGgufHeader(file);
  });

  it("has llama metadata, the vocabulary and the source checksum", async () => {
    const kv = g.kv;
    expect(kv.get("general.architecture")).toBe("llama");
    expect(kv.get("general.file_type")).toBe(2);
    expect(kv.get("llama.block_count")).toBe(2);
    expect(kv.get("llama.embedding_length")).toBe(256);
    expect(kv.get("llama.feed_forward_length")).toBe(704);
    expect(kv.get("llama.attention.head_count")).toBe(8);
    expect(kv.get("llama.attention.head_count_kv")).toBe(2);
    expect(kv.get("llama.rope.dimension_count")).toBe(32);
    expect(kv.get("llama.rope.freq_base")).toBe(1e6);
    expect(kv.has("llama.expert_count")).toBe(false);
    expect(kv.get("tokenizer.ggml.model")).toBe("llama");
    const tokens = kv.get("tokenizer.ggml.tokens") as string[];
    expect(tokens.length).toBe(32000);
    expect(tokens.slice(0, 4)).toEqual(["<unk>", "<s>", "</s>", "<0x00>"]);
    expect(tokens[259]).toBe("▁▁");
    const types = kv.get("tokenizer.ggml.token_type") as number[];
    expect([types[0], types[1], types[2], types[3], types[258], types[259]]).toEqual([2, 3, 3, 6, 6, 1]);
    const scores = kv.get("tokenizer.ggml.scores") as number[];
    expect([scores[2], scores[259], scores[260], scores[261]]).toEqual([0, -1e9, -1e9, -2]); // "▁▁", "▁▁▁▁", "▁t"
    expect(kv.get("tokenizer.ggml.bos_token_id")).toBe(1);
    expect(kv.get("tokenizer.ggml.eos_token_id")).toBe(2);
    const manifest = JSON.parse(await readFile(path.join(root, "models/dev/tiny/model.json"), "utf8")) as {
      source: { checksum: string };
    };
    // The ONNX build of the same checkpoint carries the same checksum: the bench pairs files by it.
    expect(kv.get("moe_edge.source_checksum")).toBe(manifest.source.checksum);
    expect(kv.size).toBe(28);
  });

  it("names, dims (ggml order) and types are what llama.cpp loads", async () => {
    const byName = new Map(g.tensors.map((t) => [t.name, t]));
    expect(g.tensors.length).toBe(1 + 2 * 9 + 2);
    const want: Array<[string, number[], number]> = [
      ["token_embd.weight", [256, 32000], GGML.Q4_0],
      ["blk.0.attn_norm.weight", [256], GGML.F32],
      ["blk.0.attn_q.weight", [256, 256], GGML.Q4_0],
      ["blk.0.attn_k.weight", [256, 64], GGML.Q4_0],
      ["blk.0.attn_v.weight", [256, 64], GGML.Q4_0],
      ["blk.1.attn_output.weight", [256, 256], GGML.Q4_0],
      ["blk.1.ffn_norm.weight", [256], GGML.F32],
      ["blk.1.ffn_gate.weight", [256, 704], GGML.Q4_0],
      ["blk.1.ffn_up.weight", [256, 704], GGML.Q4_0],
      ["blk.1.ffn_down.weight", [704, 256], GGML.Q4_0],
      ["output_norm.weight", [256], GGML.F32],
      ["output.weight", [256, 32000], GGML.Q6_K],
    ];
    for (const [name, dims, type] of want) {
      expect(byName.get(name)?.dims, name).toEqual(dims);
      expect(byName.get(name)?.type, name).toBe(type);
    }
    await checkLayout(file, g);
  });

  it("values: Q4_0 within one step of the weights, q/k permuted, norms exact, output Q6_K close", async () => {
    const ckpt = await openCheckpoint(hf);
    try {
      const read = (n: string) => readGgufTensor(file, g, n);
      const v = await ckpt.readF32("model.layers.0.self_attn.v_proj.weight");
      expect(q4Steps(await read("blk.0.attn_v.weight"), v)).toBeLessThanOrEqual(1.01);
      const down = await ckpt.readF32("model.layers.1.mlp.down_proj.weight");
      expect(q4Steps(await read("blk.1.ffn_down.weight"), down)).toBeLessThanOrEqual(1.01);
      const emb = await ckpt.readF32("model.embed_tokens.weight");
      expect(q4Steps(await read("token_embd.weight"), emb)).toBeLessThanOrEqual(1.01);

      const k = await ckpt.readF32("model.layers.1.self_attn.k_proj.weight");
      const kq = await read("blk.1.attn_k.weight");
      expect(q4Steps(kq, permuteRope(k, 64, 256, 2))).toBeLessThanOrEqual(1.01);
      expect(q4Steps(kq, k)).toBeGreaterThan(2); // the rows really moved
      const q = await ckpt.readF32("model.layers.0.self_attn.q_proj.weight");
      expect(q4Steps(await read("blk.0.attn_q.weight"), permuteRope(q, 256, 256, 8))).toBeLessThanOrEqual(1.01);

      const norm = await ckpt.readF32("model.layers.0.input_layernorm.weight");
      expect(new Float32Array((await read("blk.0.attn_norm.weight")).slice().buffer)).toEqual(norm);

      const lm = await ckpt.readF32("lm_head.weight");
      const out = dequantizeQ6_K(await read("output.weight"), lm.length);
      let se = 0;
      let ss = 0;
      for (let i = 0; i < lm.length; i++) {
        se += (out[i] - lm[i]) ** 2;
        ss += lm[i] ** 2;
      }
      expect(Math.sqrt(se / ss)).toBeLessThan(0.03); // 6-bit levels: ~1-2% relative RMS error
    } finally {
      await ckpt.close();
    }
  });
});

describe("synthetic Mixtral", () => {
  it("merges experts into [in, out, E] tensors in expert order, with the router in F32", async () => {
    const dir = path.join(tmp, "moe");
    await writeSyntheticCheckpoint(dir, {
      architecture: "MixtralForCausalLM",
      hidden: 64,
      intermediate: 96,
      layers: 1,
      heads: 4,
      kvHeads: 2,
      experts: 4,
      topK: 2,
      vocab: 32000,
      slidingWindow: null,
    });
    const file = path.join(tmp, "moe.gguf");
    await exportGguf(dir, file, { outputType: "q8_0" });
    const g = await readGgufHeader(file);
    expect(g.kv.get("llama.expert_count")).toBe(4);
    expect(g.kv.get("llama.expert_used_count")).toBe(2);
    const byName = new Map(g.tensors.map((t) => [t.name, t]));
    expect(byName.get("blk.0.ffn_gate_inp.weight")).toMatchObject({ dims: [64, 4], type: GGML.F32 });
    expect(byName.get("blk.0.ffn_gate_exps.weight")).toMatchObject({ dims: [64, 96, 4], type: GGML.Q4_0 });
    expect(byName.get("blk.0.ffn_up_exps.weight")).toMatchObject({ dims: [64, 96, 4], type: GGML.Q4_0 });
    expect(byName.get("blk.0.ffn_down_exps.weight")).toMatchObject({ dims: [96, 64, 4], type: GGML.Q4_0 });
    expect(byName.get("output.weight")).toMatchObject({ dims: [64, 32000], type: GGML.Q8_0 });
    expect(byName.has("blk.0.ffn_gate.weight")).toBe(false);

    const ckpt = await openCheckpoint(dir);
    try {
      const down = await readGgufTensor(file, g, "blk.0.ffn_down_exps.weight");
      const per = (96 * 64 * 18) / 32;
      for (let e = 0; e < 4; e++) {
        const w = await ckpt.readF32(`model.layers.0.block_sparse_moe.experts.${e}.w2.weight`);
        expect(q4Steps(down.subarray(e * per, (e + 1) * per), w), `expert ${e}`).toBeLessThanOrEqual(1.01);
      }
      const router = new Float32Array((await readGgufTensor(file, g, "blk.0.ffn_gate_inp.weight")).slice().buffer);
      expect(router).toEqual(await ckpt.readF32("model.layers.0.block_sparse_moe.gate.weight"));
    } finally {
      await ckpt.close();
    }
  });
});
