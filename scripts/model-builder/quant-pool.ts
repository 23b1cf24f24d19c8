/**
 * Quantizes chunks on worker threads (all cores), or inline when threads = 0. The main thread only
 * reads and writes; raw chunks are transferred, not copied.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { quantizeChunk, type RawDType } from "./quant-kernel.mjs";

export interface ChunkResult {
  q: Uint8Array;
  scales: Float32Array;
}

interface Pending {
  resolve: (r: ChunkResult) => void;
  reject: (e: Error) => void;
  worker: Worker;
}

export function defaultThreads(): number {
  return Math.max(1, Math.min(availableParallelism(), 16));
}

export class QuantPool {
  private workers: Worker[] = [];
  private load = new Map<Worker, number>();
  private pending = new Map<number, Pending>();
  private nextId = 0;
  private scratch: Float32Array | undefined;

  constructor(readonly threads: number) {
    for (let i = 0; i < threads; i++) {
      const w = new Worker(new URL("./quant-worker.mjs", import.meta.url));
      w.on("message", (m: { id: number; q: ArrayBuffer; scales: ArrayBuffer }) => {
        const p = this.pending.get(m.id)!;
        this.pending.delete(m.id);
        this.load.set(w, this.load.get(w)! - 1);
        p.resolve({ q: new Uint8Array(m.q), scales: new Float32Array(m.scales) });
      });
      w.on("error", (e) => {
        for (const [id, p] of this.pending) {
          if (p.worker === w) {
            this.pending.delete(id);
            p.reject(e);
          }
        }
      });
      this.workers.push(w);
      this.load.set(w, 0);
    }
  }

  /** How many chunks to keep in flight to keep every worker busy. */
  get depth(): number {
    return Math.max(1, this.threads * 2);
  }

  run(raws: Uint8Array[], dtypes: RawDType[], cnt: number, K: number, bs: number): Promise<ChunkResult> {
    if (this.threads === 0) {
      const r = quantizeChunk(raws, dtypes, cnt, K, bs, this.scratch);
      this.scratch = r.scratch;
      return Promise.resolve({ q: r.q, scales: r.scales });
    }
    let w = this.workers[0];
    for (const x of this.workers) if (this.load.get(x)! < this.load.get(w)!) w = x;
    this.load.set(w, this.load.get(w)! + 1);
    const id = this.nextId++;
    // Each raw must own its whole ArrayBuffer to be transferable.
    const buffers = raws.map((r) =>
      r.byteOffset === 0 && r.byteLength === r.buffer.byteLength ? r.buffer : r.slice().buffer,
    );
    return new Promise<ChunkResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker: w });
      w.postMessage({ id, raws: buffers, dtypes, cnt, K, bs }, buffers as ArrayBuffer[]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
  }
}
