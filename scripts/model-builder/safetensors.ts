/**
 * Streaming safetensors reader for Hugging Face checkpoints (single file or sharded with
 * model.safetensors.index.json). Only headers are parsed up front; tensor data is read on
 * demand, one tensor at a time, so memory does not grow with model size.
 */
import { open, readFile, stat, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { toF32Into } from "./quant-kernel.mjs";

export type DType = "BF16" | "F16" | "F32";

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute path of the shard holding the tensor. */
  file: string;
  /** Absolute byte offset of the tensor data inside `file`. */
  offset: number;
  byteLength: number;
}

export interface HfConfig {
  architectures: string[];
  model_type?: string;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim?: number | null;
  num_local_experts?: number;
  num_experts_per_tok?: number;
  vocab_size: number;
  max_position_embeddings: number;
  rope_theta: number;
  rms_norm_eps: number;
  sliding_window: number | null;
  bos_token_id: number;
  eos_token_id: number;
  tie_word_embeddings?: boolean;
  torch_dtype?: string;
}

export interface Checkpoint {
  dir: string;
  config: HfConfig;
  /** The raw bytes of config.json (for the source checksum). */
  configText: string;
  tensors: Map<string, TensorInfo>;
  /** Raw JSON headers of every shard, in shard order (for the source checksum). */
  headers: { file: string; json: string }[];
  /** Total bytes of tensor data over all shards. */
  dataBytes: number;
  /** Reads a tensor and converts it to float32. */
  readF32(name: string): Promise<Float32Array>;
  /** Reads the raw bytes of a tensor (or `length` bytes from byte `start` inside it) into `into` if given. */
  readRaw(name: string, start?: number, length?: number, into?: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Error with a one-line, user-facing message (the CLI prints `message` only). */
export class CheckpointError extends Error {
  override name = "CheckpointError";
}

const DTYPE_BYTES: Record<DType, number> = { BF16: 2, F16: 2, F32: 4 };
const MAX_HEADER = 100 * 1024 * 1024;

export function dtypeBytes(d: DType): number {
  return DTYPE_BYTES[d];
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function readJson(file: string, what: string): Promise<{ text: string; value: unknown }> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new CheckpointError(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  try {
    return { text, value: JSON.parse(text) };
  } catch {
    throw new CheckpointError(`${what} ${file} is not valid JSON`);
  }
}

function num(obj: Record<string, unknown>, key: string, file: string, optional = false): number | undefined {
  const v = obj[key];
  if (v === undefined || v === null) {
    if (optional) return undefined;
    throw new CheckpointError(`${file}: missing "${key}"`);
  }
  if (typeof v !== "number" || !Number.isFinite(v)) throw new CheckpointError(`${file}: "${key}" must be a number`);
  return v;
}

export function parseConfig(value: unknown, file: string): HfConfig {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CheckpointError(`${file}: expected a JSON object`);
  }
  const o = value as Record<string, unknown>;
  const arch = o.architectures;
  if (!Array.isArray(arch) || arch.length === 0 || !arch.every((a) => typeof a === "string")) {
    throw new CheckpointError(`${file}: missing "architectures"`);
  }
  const firstId = (v: unknown, key: string): number => {
    const x = Array.isArray(v) ? v[0] : v;
    if (typeof x !== "number") throw new CheckpointError(`${file}: "${key}" must be a number`);
    return x;
  };
  const sw = o.sliding_window;
  if (sw !== undefined && sw !== null && typeof sw !== "number") {
    throw new CheckpointError(`${file}: "sliding_window" must be a number or null`);
  }
  return {
    architectures: arch as string[],
    model_type: typeof o.model_type === "string" ? o.model_type : undefined,
    hidden_size: num(o, "hidden_size", file)!,
    intermediate_size: num(o, "intermediate_size", file)!,
    num_hidden_layers: num(o, "num_hidden_layers", file)!,
    num_attention_heads: num(o, "num_attention_heads", file)!,
    num_key_value_heads: num(o, "num_key_value_heads", file, true) ?? num(o, "num_attention_heads", file)!,
    head_dim: num(o, "head_dim", file, true) ?? null,
    num_local_experts: num(o, "num_local_experts", file, true),
    num_experts_per_tok: num(o, "num_experts_per_tok", file, true),
    vocab_size: num(o, "vocab_size", file)!,
    max_position_embeddings: num(o, "max_position_embeddings", file)!,
    rope_theta: num(o, "rope_theta", file, true) ?? 10000,
    rms_norm_eps: num(o, "rms_norm_eps", file, true) ?? 1e-5,
    sliding_window: typeof sw === "number" ? sw : null,
    bos_token_id: o.bos_token_id === undefined ? 1 : firstId(o.bos_token_id, "bos_token_id"),
    eos_token_id: o.eos_token_id === undefined ? 2 : firstId(o.eos_token_id, "eos_token_id"),
    tie_word_embeddings: typeof o.tie_word_embeddings === "boolean" ? o.tie_word_embeddings : undefined,
    torch_dtype: typeof o.torch_dtype === "string" ? o.torch_dtype : undefined,
  };
}

/** Parses one shard's header; validates offsets against the file size. */
async function readShardHeader(
  file: string,
  into: Map<string, TensorInfo>,
): Promise<{ json: string; dataBytes: number }> {
  let fh: FileHandle;
  try {
    fh = await open(file, "r");
  } catch (e) {
    throw new CheckpointError(`cannot open ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  try {
    const size = (await fh.stat()).size;
    const base = path.basename(file);
    if (size < 8) throw new CheckpointError(`${base}: truncated safetensors file (${size} bytes, no header)`);
    const lenBuf = Buffer.alloc(8);
    await fh.read(lenBuf, 0, 8, 0);
    const n = lenBuf.readBigUInt64LE(0);
    if (n < 2n || n > BigInt(MAX_HEADER) || 8n + n > BigInt(size)) {
      throw new CheckpointError(`${base}: corrupt or truncated safetensors header (length ${n}, file ${size} bytes)`);
    }
    const hlen = Number(n);
    const hbuf = Buffer.alloc(hlen);
    const { bytesRead } = await fh.read(hbuf, 0, hlen, 8);
    if (bytesRead !== hlen) throw new CheckpointError(`${base}: truncated safetensors header`);
    const json = hbuf.toString("utf8");
    let header: unknown;
    try {
      header = JSON.parse(json);
    } catch {
      throw new CheckpointError(`${base}: corrupt safetensors header (not valid JSON)`);
    }
    if (typeof header !== "object" || header === null || Array.isArray(header)) {
      throw new CheckpointError(`${base}: corrupt safetensors header (not an object)`);
    }
    const dataStart = 8 + hlen;
    const dataBytes = size - dataStart;
    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === "__metadata__") continue;
      const t = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (t.dtype !== "BF16" && t.dtype !== "F16" && t.dtype !== "F32") {
        throw new CheckpointError(
          `${base}: tensor ${name} has unsupported dtype ${String(t.dtype)} (need BF16, F16 or F32)`,
        );
      }
      const shape = t.shape;
      const offs = t.data_offsets;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
        throw new CheckpointError(`${base}: tensor ${name} has an invalid shape`);
      }
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isInteger(d) && d >= 0)) {
        throw new CheckpointError(`${base}: tensor ${name} has invalid data_offsets`);
      }
      const [s, e] = offs as [number, number];
      const count = (shape as number[]).reduce((a, b) => a * b, 1);
      if (e - s !== count * DTYPE_BYTES[t.dtype]) {
        throw new CheckpointError(
          `${base}: tensor ${name} byte length ${e - s} does not match shape [${shape.join(", ")}] ${t.dtype}`,
        );
      }
      if (e > dataBytes) {
        throw new CheckpointError(
          `${base}: truncated safetensors file (tensor ${name} ends at ${e}, data has ${dataBytes} bytes)`,
        );
      }
      if (into.has(name)) throw new CheckpointError(`${base}: tensor ${name} appears in more than one shard`);
      into.set(name, {
        name,
        dtype: t.dtype,
        shape: shape as number[],
        file,
        offset: dataStart + s,
        byteLength: e - s,
      });
    }
    return { json, dataBytes };
  } finally {
    await fh.close();
  }
}

/**
 * Converts raw little-endian tensor bytes to float32 (into `out` when given; the result is exactly the
 * tensor's length). The conversion itself lives in the quantizer kernel, which worker threads load as
 * plain JavaScript.
 */
export function toF32(bytes: Uint8Array, dtype: DType, out?: Float32Array): Float32Array {
  return toF32Into(bytes, dtype, out ?? new Float32Array(bytes.byteLength / DTYPE_BYTES[dtype]));
}

export async function openCheckpoint(dir: string): Promise<Checkpoint> {
  if (!(await exists(dir))) throw new CheckpointError(`input directory ${dir} does not exist`);
  const cfgFile = path.join(dir, "config.json");
  if (!(await exists(cfgFile)))
    throw new CheckpointError(`${dir} has no config.json (expected a Hugging Face checkpoint directory)`);
  const cfg = await readJson(cfgFile, "config");
  const config = parseConfig(cfg.value, "config.json");

  const indexFile = path.join(dir, "model.safetensors.index.json");
  const single = path.join(dir, "model.safetensors");
  let shards: string[];
  if (await exists(indexFile)) {
    const idx = (await readJson(indexFile, "index")).value as { weight_map?: Record<string, string> };
    if (!idx || typeof idx.weight_map !== "object" || idx.weight_map === null) {
      throw new CheckpointError(`model.safetensors.index.json has no weight_map`);
    }
    shards = [...new Set(Object.values(idx.weight_map))].sort().map((f) => path.join(dir, f));
  } else if (await exists(single)) {
    shards = [single];
  } else {
    throw new CheckpointError(`${dir} has neither model.safetensors nor model.safetensors.index.json`);
  }

  const tensors = new Map<string, TensorInfo>();
  const headers: { file: string; json: string }[] = [];
  let dataBytes = 0;
  for (const f of shards) {
    const h = await readShardHeader(f, tensors);
    headers.push({ file: path.basename(f), json: h.json });
    dataBytes += h.dataBytes;
  }

  const handles = new Map<string, FileHandle>();
  const handle = async (file: string): Promise<FileHandle> => {
    let fh = handles.get(file);
    if (!fh) {
      fh = await open(file, "r");
      handles.set(file, fh);
    }
    return fh;
  };
  const info = (name: string): TensorInfo => {
    const t = tensors.get(name);
    if (!t) throw new CheckpointError(`missing tensor ${name}`);
    return t;
  };

  const readRaw = async (name: string, start = 0, length?: number, into?: Uint8Array): Promise<Uint8Array> => {
    const t = info(name);
    const len = length ?? t.byteLength - start;
    const buf = into ? into.subarray(0, len) : new Uint8Array(len);
    const fh = await handle(t.file);
    let done = 0;
    while (done < len) {
      const { bytesRead } = await fh.read(buf, done, len - done, t.offset + start + done);
      if (bytesRead === 0) throw new CheckpointError(`${path.basename(t.file)}: truncated while reading ${name}`);
      done += bytesRead;
    }
    return buf;
  };

  return {
    dir,
    config,
    configText: cfg.text,
    tensors,
    headers,
    dataBytes,
    readRaw,
    async readF32(name: string): Promise<Float32Array> {
      const t = info(name);
      return toF32(await readRaw(name), t.dtype);
    },
    async close(): Promise<void> {
      for (const fh of handles.values()) await fh.close();
      handles.clear();
    },
  };
}
