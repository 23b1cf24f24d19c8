/**
 * A GGUF (version 3) writer: magic "GGUF", version, tensor count, KV count, the metadata KVs, the tensor
 * infos (name, dims in ggml order — ne[0] is the contiguous axis, the reverse of numpy's shape —, type,
 * offset into the data section), then the tensor data, each tensor starting on the alignment (32 bytes,
 * GGUF_DEFAULT_ALIGNMENT). All integers little-endian; strings are a u64 length and UTF-8 bytes.
 * Tensor data is produced one tensor at a time and streamed to disk, so memory stays at one tensor.
 */
import { open, rename, rm } from "node:fs/promises";
import { type GgmlType, tensorBytes } from "./ggml-quant";

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** gguf_type ids (gguf.h). */
export const GGUF_TYPE = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

export type GgufValue =
  | { type: "u32"; value: number }
  | { type: "f32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "string[]"; value: readonly string[] }
  | { type: "f32[]"; value: ArrayLike<number> }
  | { type: "i32[]"; value: ArrayLike<number> };

export interface GgufTensorSpec {
  name: string;
  /** ggml order: dims[0] is the row length (the last axis of the numpy/safetensors shape). */
  dims: readonly number[];
  type: GgmlType;
}

/** A growable little-endian byte buffer. */
class Bytes {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
      this.buf.copy(next, 0, 0, this.length);
      this.buf = next;
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  // room() may replace this.buf, so it runs before this.buf is read.
  u8(v: number): void {
    const at = this.room(1);
    this.buf.writeUInt8(v, at);
  }
  u32(v: number): void {
    const at = this.room(4);
    this.buf.writeUInt32LE(v, at);
  }
  i32(v: number): void {
    const at = this.room(4);
    this.buf.writeInt32LE(v, at);
  }
  u64(v: number): void {
    const at = this.room(8);
    this.buf.writeBigUInt64LE(BigInt(v), at);
  }
  f32(v: number): void {
    const at = this.room(4);
    this.buf.writeFloatLE(v, at);
  }
  str(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    const at = this.room(b.length);
    b.copy(this.buf, at);
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    const at = this.room(n);
    this.buf.fill(0, at, this.length);
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function writeValue(out: Bytes, v: GgufValue): void {
  switch (v.type) {
    case "u32":
      out.u32(GGUF_TYPE.UINT32);
      out.u32(v.value);
      return;
    case "f32":
      out.u32(GGUF_TYPE.FLOAT32);
      out.f32(v.value);
      return;
    case "bool":
      out.u32(GGUF_TYPE.BOOL);
      out.u8(v.value ? 1 : 0);
      return;
    case "string":
      out.u32(GGUF_TYPE.STRING);
      out.str(v.value);
      return;
    case "string[]":
      out.u32(GGUF_TYPE.ARRAY);
      out.u32(GGUF_TYPE.STRING);
      out.u64(v.value.length);
      for (const s of v.value) out.str(s);
      return;
    case "f32[]":
      out.u32(GGUF_TYPE.ARRAY);
      out.u32(GGUF_TYPE.FLOAT32);
      out.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) out.f32(v.value[i]);
      return;
    case "i32[]":
      out.u32(GGUF_TYPE.ARRAY);
      out.u32(GGUF_TYPE.INT32);
      out.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) out.i32(v.value[i]);
  }
}

export function tensorDataBytes(t: GgufTensorSpec): number {
  return tensorBytes(
    t.type,
    t.dims.reduce((a, b) => a * b, 1),
  );
}

const align = (n: number) => Math.ceil(n / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;

/**
 * The header (everything before the data section, padded to the alignment) and each tensor's offset
 * inside the data section.
 */
export function ggufHeader(
  kvs: ReadonlyArray<readonly [string, GgufValue]>,
  tensors: readonly GgufTensorSpec[],
): { header: Buffer; offsets: number[]; dataBytes: number } {
  const out = new Bytes();
  out.u32(GGUF_MAGIC);
  out.u32(GGUF_VERSION);
  out.u64(tensors.length);
  out.u64(kvs.length);
  for (const [key, value] of kvs) {
    out.str(key);
    writeValue(out, value);
  }
  const offsets: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (t.dims.length < 1 || t.dims.length > 4) throw new Error(`${t.name}: ggml tensors have 1 to 4 dims`);
    out.str(t.name);
    out.u32(t.dims.length);
    for (const d of t.dims) out.u64(d);
    out.u32(t.type);
    out.u64(offset);
    offsets.push(offset);
    offset = align(offset + tensorDataBytes(t));
  }
  out.pad(GGUF_ALIGNMENT);
  return { header: out.bytes(), offsets, dataBytes: offset };
}

/**
 * Writes a GGUF file: `produce(i)` returns tensor i's encoded bytes (exactly tensorDataBytes of it),
 * called in order, one at a time. Written to a temporary name and renamed, so a crash never leaves a
 * truncated file under `file`.
 */
export async function writeGguf(
  file: string,
  kvs: ReadonlyArray<readonly [string, GgufValue]>,
  tensors: readonly GgufTensorSpec[],
  produce: (i: number) => Promise<Uint8Array>,
): Promise<{ bytes: number }> {
  const { header, offsets, dataBytes } = ggufHeader(kvs, tensors);
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await open(tmp, "w");
  try {
    await fh.write(header, 0, header.length, 0);
    for (let i = 0; i < tensors.length; i++) {
      const data = await produce(i);
      const want = tensorDataBytes(tensors[i]);
      if (data.byteLength !== want) {
        throw new Error(`${tensors[i].name}: produced ${data.byteLength} bytes, expected ${want}`);
      }
      await fh.write(data, 0, data.byteLength, header.length + offsets[i]);
    }
    // The last tensor's padding: the data section is a whole number of alignment units.
    await fh.truncate(header.length + dataBytes);
    await fh.close();
  } catch (e) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw e;
  }
  await rename(tmp, file);
  return { bytes: header.length + dataBytes };
}
