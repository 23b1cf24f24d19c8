/**
 * Seeded synthetic checkpoints in Hugging Face layout (config.json + bf16 safetensors, optionally
 * sharded with model.safetensors.index.json). Each tensor's values depend only on (seed, name), so
 * sharded and single-file versions of a preset hold identical weights. Written chunk by chunk.
 */
import { createHash } from "node:crypto";
import { mkdir, open, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { HfConfig } from "./safetensors";
import { deriveSpec, expectedTensors } from "./spec";

export interface SyntheticOptions {
  seed: number;
  /** Number of safetensors shards (1 = model.safetensors). */
  shards: number;
  /** Extra config.json fields (e.g. a preset hash). */
  extra?: Record<string, unknown>;
  /** Stored dtype (default BF16); values are generated as bf16 and widened, so F32 holds the same weights. */
  dtype?: "BF16" | "F16" | "F32";
  /** Edits the tensor list before writing (tests: drop, add or reshape tensors). */
  mutate?: (tensors: { name: string; shape: number[] }[]) => { name: string; shape: number[] }[];
}

const CHUNK = 1 << 20;

function seedFor(seed: number, name: string): number {
  const h = createHash("sha256").update(`${seed}:${name}`).digest();
  return h.readUInt32LE(0) || 1;
}

/** Standard deviation of each tensor kind: small inits like a trained-ish model, norms near 1. */
function initFor(name: string, cfg: HfConfig): { mean: number; std: number } {
  if (name.endsWith("layernorm.weight") || name === "model.norm.weight") return { mean: 1, std: 0.05 };
  // Router logits with spread ~1 so top-k choices are not near-ties.
  if (name.endsWith("block_sparse_moe.gate.weight")) return { mean: 0, std: 1 / Math.sqrt(cfg.hidden_size) };
  return { mean: 0, std: 0.02 };
}

/**
 * Fills `out` with bf16 bits of mean + std * (bell-shaped) noise: the two 16-bit halves of one
 * xorshift32 draw summed (a triangular distribution), so one PRNG step per value. Returns the PRNG state.
 */
function fillBf16(out: Uint16Array, state: number, mean: number, std: number): number {
  // The sum of two U(0,1) has variance 1/6: scale to unit variance.
  const k = (std * Math.sqrt(6)) / 65536;
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  let s = state >>> 0;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    f[0] = mean + ((s & 0xffff) + (s >>> 16) - 65535) * k;
    // Round to nearest even bf16.
    const bits = u[0];
    out[i] = (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
  }
  return s;
}

/** float32 -> IEEE half, round to nearest (test data only: no NaN handling needed). */
function floatToHalf(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -24) return sign;
  if (a < 2 ** -14) return sign | Math.round(a / 2 ** -24);
  let e = Math.floor(Math.log2(a));
  let m = Math.round((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e += 1;
  }
  return sign | ((e + 15) << 10) | m;
}

export function configHash(cfg: HfConfig, opts: SyntheticOptions): string {
  return createHash("sha256")
    .update(JSON.stringify({ cfg, seed: opts.seed, shards: opts.shards, extra: opts.extra ?? {} }))
    .digest("hex")
    .slice(0, 16);
}

/** Writes the checkpoint; returns its tensor data size in bytes. */
export async function writeSyntheticCheckpoint(dir: string, cfg: HfConfig, opts: SyntheticOptions): Promise<number> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const spec = deriveSpec(cfg, { blockSize: 32, accuracyLevel: 4 });
  let list = [...expectedTensors(spec)].map(([name, shape]) => ({ name, shape }));
  if (opts.mutate) list = opts.mutate(list);
  const dtype = opts.dtype ?? "BF16";
  const eb = dtype === "F32" ? 4 : 2;
  const tensors = list.map(({ name, shape }) => ({ name, shape, bytes: shape.reduce((a, b) => a * b, 1) * eb }));
  const total = tensors.reduce((a, t) => a + t.bytes, 0);

  // Greedy split into `shards` files of roughly equal size, keeping tensor order.
  const groups: (typeof tensors)[] = [];
  const target = total / opts.shards;
  let cur: typeof tensors = [];
  let curBytes = 0;
  for (const t of tensors) {
    if (curBytes > 0 && curBytes + t.bytes > target && groups.length < opts.shards - 1) {
      groups.push(cur);
      cur = [];
      curBytes = 0;
    }
    cur.push(t);
    curBytes += t.bytes;
  }
  groups.push(cur);

  const files = groups.map((_, i) =>
    groups.length === 1
      ? "model.safetensors"
      : `model-${String(i + 1).padStart(5, "0")}-of-${String(groups.length).padStart(5, "0")}.safetensors`,
  );
  const weightMap: Record<string, string> = {};
  const buf = new Uint16Array(CHUNK);
  const wide = new Uint32Array(CHUNK);
  const half = new Uint16Array(CHUNK);
  for (let gi = 0; gi < groups.length; gi++) {
    const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
    let off = 0;
    for (const t of groups[gi]) {
      header[t.name] = { dtype, shape: t.shape, data_offsets: [off, off + t.bytes] };
      off += t.bytes;
      weightMap[t.name] = files[gi];
    }
    let json = JSON.stringify(header);
    json += " ".repeat((8 - ((8 + json.length) % 8)) % 8);
    const fh = await open(path.join(dir, files[gi]), "w");
    try {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      await fh.write(len);
      await fh.write(Buffer.from(json, "utf8"));
      for (const t of groups[gi]) {
        const { mean, std } = initFor(t.name, cfg);
        let state = seedFor(opts.seed, t.name);
        let left = t.bytes / eb;
        while (left > 0) {
          const n = Math.min(CHUNK, left);
          const view = buf.subarray(0, n);
          state = fillBf16(view, state, mean, std);
          if (dtype === "BF16") await fh.write(new Uint8Array(view.buffer, 0, n * 2));
          else if (dtype === "F32") {
            for (let i = 0; i < n; i++) wide[i] = view[i] << 16;
            await fh.write(new Uint8Array(wide.buffer, 0, n * 4));
          } else {
            const f = new Float32Array(wide.buffer, 0, n);
            for (let i = 0; i < n; i++) wide[i] = view[i] << 16;
            for (let i = 0; i < n; i++) half[i] = floatToHalf(f[i]);
            await fh.write(new Uint8Array(half.buffer, 0, n * 2));
          }
          left -= n;
        }
      }
    } finally {
      await fh.close();
    }
  }
  if (groups.length > 1) {
    await writeFile(
      path.join(dir, "model.safetensors.index.json"),
      JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2),
    );
  }
  await writeFile(
    path.join(dir, "config.json"),
    JSON.stringify(
      { ...cfg, torch_dtype: { BF16: "bfloat16", F16: "float16", F32: "float32" }[dtype], ...(opts.extra ?? {}) },
      null,
      2,
    ),
  );
  return total;
}
