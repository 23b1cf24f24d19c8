/**
 * The sampler's passes over a logits row, run in WebAssembly (weigh.wat): the row's max, every id's weight
 * and bucket (bit-identical to sampler-weights.ts's weighAll, the reference), the ids of one bucket, and
 * the draw inside one bucket. About twice as fast as the same passes in JavaScript, with no bounds checks
 * or deopts in their loops and SIMD where lanes are independent.
 *
 * The row is copied into the module's memory; the weights, buckets, bucket masses and ids live there and
 * are read from JavaScript through the views below (re-made when the memory grows).
 */
import { COARSE, FINE, ZERO_BUCKET } from "../sampler-weights";
import { WEIGH_WASM_BASE64 } from "./weigh.generated";

interface Exports {
  memory: WebAssembly.Memory;
  rowMax(row: number, n: number): number;
  weigh(row: number, w: number, bucket: number, n: number, max: number, invT: number): number;
  collect(bucket: number, n: number, b: number, ids: number): number;
  drawBucket(bucket: number, w: number, n: number, c: number, r: number): number;
}

// Fixed layout (weigh.wat hard-codes these): the two tables, then the bucket masses, then the per-id arrays.
const FINE_AT = 0;
const COARSE_AT = 1024;
const MASS_AT = 33808;
const ARRAYS_AT = 66592;
const align16 = (n: number) => Math.ceil(n / 16) * 16;
// Workers cannot compile bytes, so workers-types (in this project's types) declares Module abstract; Node can.
const WasmModule = WebAssembly.Module as unknown as new (bytes: Uint8Array) => WebAssembly.Module;

export class RowKernels {
  private readonly x: Exports;
  private capacity = 0;
  private rowAt = ARRAYS_AT;
  private wAt = 0;
  private bucketAt = 0;
  private idsAt = 0;
  /** The last loaded row (copied in by load). */
  row = new Float32Array(0);
  /** Per-id weights of the last weigh (and whatever else the sampler keeps per id, e.g. top-k weights). */
  weights = new Float64Array(0);
  buckets = new Uint16Array(0);
  /** Candidate ids (collect writes here). */
  ids = new Int32Array(0);
  bucketMass = new Float64Array(0);

  constructor() {
    const bytes = Buffer.from(WEIGH_WASM_BASE64, "base64");
    this.x = new WebAssembly.Instance(new WasmModule(bytes), {}).exports as unknown as Exports;
    this.views();
    new Float64Array(this.x.memory.buffer, FINE_AT, FINE.length).set(FINE);
    new Float64Array(this.x.memory.buffer, COARSE_AT, COARSE.length).set(COARSE);
  }

  /** Room for rows of V ids. */
  ensure(V: number): void {
    if (V <= this.capacity) return;
    this.wAt = align16(this.rowAt + 4 * V);
    this.bucketAt = align16(this.wAt + 8 * V);
    this.idsAt = align16(this.bucketAt + 2 * V);
    const need = this.idsAt + 4 * V;
    const have = this.x.memory.buffer.byteLength;
    if (need > have) this.x.memory.grow(Math.ceil((need - have) / 65536));
    this.capacity = V;
    this.views();
  }

  /** Copies row in; returns its largest value, NaN if it has a NaN. */
  load(row: Float32Array): number {
    this.ensure(row.length);
    if (this.row.length !== row.length || this.row.buffer !== this.x.memory.buffer)
      this.row = new Float32Array(this.x.memory.buffer, this.rowAt, row.length);
    this.row.set(row);
    return this.x.rowMax(this.rowAt, row.length);
  }

  /** weighAll over the loaded row: weights, buckets and bucket masses; returns the sum of the weights. */
  weigh(max: number, invT: number): number {
    return this.x.weigh(this.rowAt, this.wAt, this.bucketAt, this.row.length, max, invT);
  }

  /** Writes the ids of bucket b (ascending) to ids[0, n); returns n. */
  collect(b: number): number {
    return this.x.collect(this.bucketAt, this.row.length, b, this.idsAt);
  }

  /**
   * Walks bucket c's ids with a positive weight in index order, taking each weight off r: the first that
   * takes r below 0, else the last of them (rounding), else -1.
   */
  drawBucket(c: number, r: number): number {
    return this.x.drawBucket(this.bucketAt, this.wAt, this.row.length, c, r);
  }

  private views(): void {
    const buf = this.x.memory.buffer;
    const V = this.capacity;
    this.weights = new Float64Array(buf, this.wAt || ARRAYS_AT, V);
    this.buckets = new Uint16Array(buf, this.bucketAt || ARRAYS_AT, V);
    this.ids = new Int32Array(buf, this.idsAt || ARRAYS_AT, V);
    this.bucketMass = new Float64Array(buf, MASS_AT, ZERO_BUCKET + 1);
  }
}
