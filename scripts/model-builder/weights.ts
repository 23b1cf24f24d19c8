/**
 * Streams the checkpoint into the external data file, job by job and chunk by chunk, so memory
 * stays bounded by a few chunk buffers whatever the model size. Offsets are fixed up front
 * (layoutInitializers), so an initializer built from many source tensors (all experts of a layer)
 * is written straight into its contiguous region.
 */
import type { FileHandle } from "node:fs/promises";
import type { InitDecl, Job } from "./graph";
import type { QuantPool } from "./quant-pool";
import { type Checkpoint, dtypeBytes, toF32 } from "./safetensors";
import type { ModelSpec } from "./spec";

/** Offsets are 4096-aligned so ORT may mmap any initializer. */
export const ALIGN = 4096;
/** Source elements converted per chunk (per source tensor): bounds memory. */
const CHUNK_ELEMS = 1 << 20;
const MAX_PENDING = 8;

export interface Placed extends InitDecl {
  offset: number;
}

export function layoutInitializers(inits: InitDecl[]): { placed: Map<string, Placed>; totalBytes: number } {
  const placed = new Map<string, Placed>();
  let off = 0;
  for (const d of inits) {
    if (d.inline) {
      placed.set(d.name, { ...d, offset: -1 });
      continue;
    }
    placed.set(d.name, { ...d, offset: off });
    off = Math.ceil((off + d.byteLength) / ALIGN) * ALIGN;
  }
  return { placed, totalBytes: off };
}

/** Input bytes a job reads (for progress). */
export function jobInputBytes(job: Job, ckpt: Checkpoint): number {
  const bytes = (n: string) => ckpt.tensors.get(n)!.byteLength;
  if (job.kind === "f32") return bytes(job.tensor);
  if (job.kind === "rope") return 0;
  return job.groups.reduce((a, g) => a + g.sources.reduce((b, n) => b + bytes(n), 0), 0);
}

export class WeightWriter {
  private raw = new Uint8Array(CHUNK_ELEMS * 4);
  /** Writes in flight; awaited before buffers they reference are reused. */
  private pending: Promise<unknown>[] = [];
  private failed: Error | undefined;

  constructor(
    private ckpt: Checkpoint,
    private out: FileHandle,
    private placed: Map<string, Placed>,
    private spec: ModelSpec,
    private pool: QuantPool,
    private onBytes: (n: number) => void,
  ) {}

  async run(job: Job): Promise<void> {
    if (job.kind === "f32") await this.f32Job(job.init, job.tensor, job.transpose === true);
    else if (job.kind === "rope") await this.ropeJob(job.cos, job.sin);
    else await this.q4Job(job);
    await this.flush();
  }

  async flush(): Promise<void> {
    const p = this.pending;
    this.pending = [];
    await Promise.all(p);
    if (this.failed) throw this.failed;
  }

  /** Queues a write; waits for the oldest when too many are in flight (bounds memory). */
  private async write(data: Uint8Array, position: number): Promise<void> {
    if (this.failed) throw this.failed;
    // Errors are recorded, not left as unhandled rejections, and rethrown on the next write or flush.
    this.pending.push(this.writeAll(data, position).catch((e: unknown) => void (this.failed ??= e as Error)));
    while (this.pending.length > MAX_PENDING) await this.pending.shift();
  }

  private async writeAll(data: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.out.write(data, done, data.length - done, position + done);
      done += bytesWritten;
    }
  }

  /** Reads rows [r0, r0+n) of a 2D (or 1D) tensor as float32 into `into`. */
  private async readRowsF32(
    tensor: string,
    cols: number,
    r0: number,
    n: number,
    into: Float32Array,
  ): Promise<Float32Array> {
    const t = this.ckpt.tensors.get(tensor)!;
    const eb = dtypeBytes(t.dtype);
    const len = n * cols * eb;
    if (this.raw.length < len) this.raw = new Uint8Array(len);
    const raw = await this.ckpt.readRaw(tensor, r0 * cols * eb, len, this.raw);
    this.onBytes(len);
    return toF32(raw, t.dtype, into);
  }

  private async f32Job(init: string, tensor: string, transpose: boolean): Promise<void> {
    const dst = this.placed.get(init)!;
    const t = this.ckpt.tensors.get(tensor)!;
    const rows = t.shape.length === 2 ? t.shape[0] : 1;
    const cols = t.shape[t.shape.length - 1];
    if (transpose) {
      // Only small tensors (router gates) are transposed: read whole.
      const src = await this.readRowsF32(tensor, cols, 0, rows, new Float32Array(rows * cols));
      const outT = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) outT[c * rows + r] = src[r * cols + c];
      await this.write(new Uint8Array(outT.buffer), dst.offset);
      return;
    }
    const per = Math.max(1, Math.floor(CHUNK_ELEMS / cols));
    for (let r = 0; r < rows; r += per) {
      const n = Math.min(per, rows - r);
      // Fresh buffer per chunk: the write is still in flight while the next chunk converts.
      const buf = await this.readRowsF32(tensor, cols, r, n, new Float32Array(n * cols));
      await this.write(new Uint8Array(buf.buffer), dst.offset + r * cols * 4);
    }
  }

  /** Reads rows [r0, r0+n) of a [rows, cols] tensor as raw bytes into a fresh buffer (it is transferred). */
  private async readRowsRaw(tensor: string, cols: number, r0: number, n: number): Promise<Uint8Array> {
    const t = this.ckpt.tensors.get(tensor)!;
    const eb = dtypeBytes(t.dtype);
    const raw = await this.ckpt.readRaw(tensor, r0 * cols * eb, n * cols * eb);
    this.onBytes(raw.length);
    return raw;
  }

  private async q4Job(job: Extract<Job, { kind: "q4" }>): Promise<void> {
    const w = this.placed.get(job.weight)!;
    const sc = this.placed.get(job.scales)!;
    const K = job.K;
    const bs = this.spec.blockSize;
    const nb = K / bs;
    const inflight = new Set<Promise<void>>();
    let failed: unknown;
    for (const g of job.groups) {
      const n = g.sources.length;
      const rows = this.ckpt.tensors.get(g.sources[0])!.shape[0];
      const dtypes = g.sources.map((x) => this.ckpt.tensors.get(x)!.dtype);
      const per = Math.max(1, Math.floor(CHUNK_ELEMS / K));
      for (let r = 0; r < rows; r += per) {
        if (failed) throw failed;
        const cnt = Math.min(per, rows - r);
        const raws: Uint8Array[] = [];
        for (const src of g.sources) raws.push(await this.readRowsRaw(src, K, r, cnt));
        const row0 = g.outRow + r * n;
        const p: Promise<void> = this.pool.run(raws, dtypes, cnt, K, bs).then(async ({ q, scales }) => {
          await this.write(q, w.offset + (row0 * K) / 2);
          await this.write(new Uint8Array(scales.buffer), sc.offset + row0 * nb * 4);
        });
        inflight.add(p);
        p.then(
          () => inflight.delete(p),
          (e: unknown) => {
            failed ??= e;
            inflight.delete(p);
          },
        );
        while (inflight.size >= this.pool.depth) await Promise.race(inflight).catch(() => undefined);
      }
    }
    await Promise.all(inflight);
  }

  private async ropeJob(cosName: string, sinName: string): Promise<void> {
    const half = this.spec.headDim / 2;
    const ctx = this.spec.context;
    const cos = new Float32Array(ctx * half);
    const sin = new Float32Array(ctx * half);
    const invFreq = Array.from({ length: half }, (_, i) => 1 / this.spec.ropeTheta ** ((2 * i) / this.spec.headDim));
    for (let p = 0; p < ctx; p++) {
      for (let i = 0; i < half; i++) {
        const a = p * invFreq[i];
        cos[p * half + i] = Math.cos(a);
        sin[p * half + i] = Math.sin(a);
      }
    }
    await this.write(new Uint8Array(cos.buffer), this.placed.get(cosName)!.offset);
    await this.write(new Uint8Array(sin.buffer), this.placed.get(sinName)!.offset);
  }
}
