/**
 * Reads a GGUF file's header back (KVs, tensor infos, where the data section starts) and single tensors'
 * bytes: the export's tests check files with it, and the reference bench reads the source checksum an
 * export stored, to tell a stale file from a current one without rewriting it.
 */
import { open } from "node:fs/promises";
import type { GgmlType } from "./ggml-quant";
import { GGUF_ALIGNMENT, GGUF_MAGIC, GGUF_TYPE, tensorDataBytes } from "./gguf-writer";

export type GgufScalar = number | bigint | boolean | string;
export type GgufKvValue = GgufScalar | GgufScalar[];

export interface GgufTensorInfo {
  name: string;
  dims: number[];
  type: GgmlType;
  /** Offset inside the data section. */
  offset: number;
}

export interface GgufFile {
  version: number;
  kv: Map<string, GgufKvValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute offset of the data section (the header's length, padded). */
  dataOffset: number;
}

/** Thrown when the header runs past the bytes read so far: the caller reads more and tries again. */
class Short extends Error {}

class Cursor {
  pos = 0;
  constructor(private readonly buf: Buffer) {}
  private need(n: number): number {
    if (this.pos + n > this.buf.length) throw new Short();
    const at = this.pos;
    this.pos += n;
    return at;
  }
  u8 = () => this.buf.readUInt8(this.need(1));
  i8 = () => this.buf.readInt8(this.need(1));
  u16 = () => this.buf.readUInt16LE(this.need(2));
  i16 = () => this.buf.readInt16LE(this.need(2));
  u32 = () => this.buf.readUInt32LE(this.need(4));
  i32 = () => this.buf.readInt32LE(this.need(4));
  f32 = () => this.buf.readFloatLE(this.need(4));
  f64 = () => this.buf.readDoubleLE(this.need(8));
  u64 = () => this.buf.readBigUInt64LE(this.need(8));
  i64 = () => this.buf.readBigInt64LE(this.need(8));
  /** A u64 that must fit a JS number (counts, lengths, offsets). */
  size(): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`gguf: size ${v} out of range`);
    return Number(v);
  }
  str(): string {
    const n = this.size();
    const at = this.need(n);
    return this.buf.toString("utf8", at, at + n);
  }
}

function scalar(c: Cursor, type: number): GgufScalar {
  switch (type) {
    case GGUF_TYPE.UINT8:
      return c.u8();
    case GGUF_TYPE.INT8:
      return c.i8();
    case GGUF_TYPE.UINT16:
      return c.u16();
    case GGUF_TYPE.INT16:
      return c.i16();
    case GGUF_TYPE.UINT32:
      return c.u32();
    case GGUF_TYPE.INT32:
      return c.i32();
    case GGUF_TYPE.FLOAT32:
      return c.f32();
    case GGUF_TYPE.BOOL:
      return c.u8() !== 0;
    case GGUF_TYPE.STRING:
      return c.str();
    case GGUF_TYPE.UINT64:
      return c.u64();
    case GGUF_TYPE.INT64:
      return c.i64();
    case GGUF_TYPE.FLOAT64:
      return c.f64();
    default:
      throw new Error(`gguf: unknown value type ${type}`);
  }
}

function parse(buf: Buffer): GgufFile {
  const c = new Cursor(buf);
  if (c.u32() !== GGUF_MAGIC) throw new Error("not a GGUF file (bad magic)");
  const version = c.u32();
  if (version !== 3) throw new Error(`gguf: version ${version}, this reader knows 3`);
  const nTensors = c.size();
  const nKv = c.size();
  const kv = new Map<string, GgufKvValue>();
  for (let i = 0; i < nKv; i++) {
    const key = c.str();
    const type = c.u32();
    if (type === GGUF_TYPE.ARRAY) {
      const et = c.u32();
      const n = c.size();
      const arr: GgufScalar[] = new Array(n);
      for (let j = 0; j < n; j++) arr[j] = scalar(c, et);
      kv.set(key, arr);
    } else kv.set(key, scalar(c, type));
  }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = c.str();
    const nd = c.u32();
    const dims: number[] = [];
    for (let d = 0; d < nd; d++) dims.push(c.size());
    const type = c.u32() as GgmlType;
    tensors.push({ name, dims, type, offset: c.size() });
  }
  const a = kv.get("general.alignment");
  const alignment = typeof a === "number" ? a : GGUF_ALIGNMENT;
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  return { version, kv, tensors, alignment, dataOffset };
}

/** Parses the header of `file`, reading only as much of it as the header needs. */
export async function readGgufHeader(file: string): Promise<GgufFile> {
  const fh = await open(file, "r");
  try {
    const size = (await fh.stat()).size;
    for (let n = Math.min(size, 1 << 20); ; n = Math.min(size, n * 4)) {
      const buf = Buffer.alloc(n);
      await fh.read(buf, 0, n, 0);
      try {
        return parse(buf);
      } catch (e) {
        if (!(e instanceof Short)) throw e;
        if (n === size) throw new Error(`${file}: truncated GGUF header`);
      }
    }
  } finally {
    await fh.close();
  }
}

/** The raw bytes of one tensor. */
export async function readGgufTensor(file: string, g: GgufFile, name: string): Promise<Uint8Array> {
  const t = g.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`${file}: no tensor ${name}`);
  const n = tensorDataBytes(t);
  const buf = new Uint8Array(n);
  const fh = await open(file, "r");
  try {
    const { bytesRead } = await fh.read(buf, 0, n, g.dataOffset + t.offset);
    if (bytesRead !== n) throw new Error(`${file}: tensor ${name} is truncated`);
  } finally {
    await fh.close();
  }
  return buf;
}
