/**
 * KV-cache manager: one preallocated buffer per layer for K and one for V, bounded by a byte budget.
 *
 * Layout: the running sequences occupy rows 0..B-1 of a dense [B, kvH, Pcap, D] tensor (slot-major), so
 * the first B slots are exactly the `past` tensor of a batched decode and slot b alone is the contiguous
 * `past` of a batch-1 prefill chunk (a zero-copy view). The graph returns only the rows a step wrote
 * (`present_new`, contract/model-manifest.ts) and `appendStep` copies them in here.
 *
 * What a step copies between ONNX Runtime and JS: B × S × kvH × D × 4 bytes × 2 (K, V) × layers, the new
 * rows only (perf model: 16 KiB per new token; batch-8 decode 128 KiB). Before present_new the graph
 * returned all of `present` (onnxruntime-node copies every fetched output into a fresh ArrayBuffer, even a
 * pre-allocated one): B × kvH × Pcap × D × 4 × 2 × layers, e.g. 17 MiB per step at batch 1 with 1088 rows
 * and 136 MiB at batch 8. Inside ORT, GroupQueryAttention still builds its own `present` per layer
 * (memset + copy of the used rows in C++, arena memory, freed layer by layer), which measured cheaper
 * than the copy-back. The runner refuses models built before present_new (rebuild them).
 * Pcap (the per-slot capacity) grows in steps of `capStep`; growing re-lays the used rows out in place.
 * A sequence leaving moves the last slot into its place, so slots stay dense.
 */
export interface KvGeometry {
  layers: number;
  kvHeads: number;
  headDim: number;
  /** Longest sequence the model accepts (context window). */
  maxSeq: number;
}

export class KvPool {
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  /** Floats per layer buffer. */
  readonly capacityFloats: number;
  private pcap: number;
  private readonly capStep = 64;
  /** slot index -> sequence id; lengths[slot] = rows written. */
  private readonly slotSeq: number[] = [];
  private readonly lengths: number[] = [];
  /** Tokens each slot may grow to (prompt + max new tokens, clamped): admission keeps B * max(reserve) in budget. */
  private readonly reserves: number[] = [];

  constructor(
    readonly geo: KvGeometry,
    budgetBytes: number,
    readonly maxBatch: number,
  ) {
    const rowFloats = geo.kvHeads * geo.headDim;
    // budget covers K and V of every layer
    const perLayer = Math.floor(budgetBytes / (4 * 2 * geo.layers));
    this.capacityFloats = Math.floor(perLayer / rowFloats) * rowFloats;
    if (this.capacityFloats < rowFloats * this.capStep) throw new Error("kv budget too small for one sequence");
    this.keys = Array.from({ length: geo.layers }, () => new Float32Array(this.capacityFloats));
    this.values = Array.from({ length: geo.layers }, () => new Float32Array(this.capacityFloats));
    this.pcap = this.capStep;
  }

  get bytes(): number {
    return this.capacityFloats * 4 * 2 * this.geo.layers;
  }
  /** Token rows the whole pool can hold. */
  get capacityTokens(): number {
    return this.capacityFloats / (this.geo.kvHeads * this.geo.headDim);
  }
  get batchSize(): number {
    return this.slotSeq.length;
  }
  get slotCapacity(): number {
    return this.pcap;
  }
  get usedTokens(): number {
    return this.lengths.reduce((a, b) => a + b, 0);
  }
  /** Sequence ids in slot order. */
  get slots(): readonly number[] {
    return this.slotSeq;
  }
  slotOf(seq: number): number {
    const s = this.slotSeq.indexOf(seq);
    if (s < 0) throw new Error(`sequence ${seq} has no slot`);
    return s;
  }
  has(seq: number): boolean {
    return this.slotSeq.includes(seq);
  }
  length(seq: number): number {
    return this.lengths[this.slotOf(seq)]!;
  }
  /** Longest total length that fits one slot given the largest possible Pcap for a batch of `b`. */
  maxTokensFor(batch: number): number {
    const rows = Math.floor(this.capacityTokens / batch);
    return Math.min(this.geo.maxSeq, rows);
  }

  private roundCap(n: number): number {
    return Math.min(Math.ceil(n / this.capStep) * this.capStep, Math.max(this.geo.maxSeq, n));
  }

  /** True when one more sequence reserving `reserve` tokens fits next to the running ones. */
  canAdmit(reserve: number): boolean {
    if (this.slotSeq.length >= this.maxBatch) return false;
    const maxRes = Math.max(reserve, ...this.reserves);
    return (this.slotSeq.length + 1) * this.roundCap(maxRes) <= this.capacityTokens;
  }

  admit(seq: number, reserve: number): number {
    if (!this.canAdmit(reserve)) throw new Error("kv pool full");
    this.slotSeq.push(seq);
    this.lengths.push(0);
    this.reserves.push(reserve);
    return this.slotSeq.length - 1;
  }

  /**
   * Frees the sequence's slot keeping slots dense AND the last slot last (the engine keeps its one
   * prefilling sequence there so the decoding ones stay a contiguous prefix): at most two slot copies.
   */
  release(seq: number): void {
    const s = this.slotSeq.indexOf(seq);
    if (s < 0) return;
    const last = this.slotSeq.length - 1;
    if (s < last - 1) this.moveSlot(last - 1, s);
    if (s < last) this.moveSlot(last, last - 1);
    this.slotSeq.pop();
    this.lengths.pop();
    this.reserves.pop();
  }

  private moveSlot(from: number, to: number): void {
    this.copySlot(from, to, this.lengths[from]!);
    this.slotSeq[to] = this.slotSeq[from]!;
    this.lengths[to] = this.lengths[from]!;
    this.reserves[to] = this.reserves[from]!;
  }

  /** Makes sure every slot can hold `tokens` rows (grows Pcap, re-laying used rows out). */
  ensureCapacity(tokens: number): void {
    if (tokens <= this.pcap) return;
    const next = this.roundCap(tokens);
    const { kvHeads: H, headDim: D } = this.geo;
    if (this.slotSeq.length * H * next * D > this.capacityFloats) throw new Error("kv capacity exceeded");
    const old = this.pcap;
    // New offsets are >= old ones: move from the end backwards so nothing is overwritten before it moves.
    for (let l = 0; l < this.geo.layers; l++) {
      for (const buf of [this.keys[l]!, this.values[l]!]) {
        for (let b = this.slotSeq.length - 1; b >= 0; b--) {
          const len = this.lengths[b]!;
          for (let h = H - 1; h >= 0; h--) {
            const src = (b * H + h) * old * D;
            const dst = (b * H + h) * next * D;
            if (len > 0 && src !== dst) buf.copyWithin(dst, src, src + len * D);
          }
        }
      }
    }
    this.pcap = next;
  }

  private copySlot(from: number, to: number, len: number): void {
    const { kvHeads: H, headDim: D } = this.geo;
    const P = this.pcap;
    for (let l = 0; l < this.geo.layers; l++) {
      for (const buf of [this.keys[l]!, this.values[l]!]) {
        for (let h = 0; h < H; h++) {
          const src = (from * H + h) * P * D;
          buf.copyWithin((to * H + h) * P * D, src, src + len * D);
        }
      }
    }
  }

  /** Floats [start, end) of slots [first, first+count) in every layer buffer: the `past` tensor view. */
  viewRange(first: number, count: number): { offset: number; length: number } {
    const n = this.geo.kvHeads * this.pcap * this.geo.headDim;
    return { offset: first * n, length: count * n };
  }

  /**
   * Writes one step's new rows: `keys[l]` / `values[l]` are [B, kvH, S, D] (present_new) for the slots
   * [firstSlot, firstSlot + B), sequence b's rows landing at pastLengths[b]..pastLengths[b]+S-1.
   */
  appendStep(
    firstSlot: number,
    pastLengths: readonly number[],
    S: number,
    keys: Float32Array[],
    values: Float32Array[],
  ): void {
    const { kvHeads: H, headDim: D, layers } = this.geo;
    const P = this.pcap;
    const n = S * D;
    for (let l = 0; l < layers; l++) {
      for (const [src, dst] of [
        [keys[l]!, this.keys[l]!],
        [values[l]!, this.values[l]!],
      ] as const) {
        for (let b = 0; b < pastLengths.length; b++) {
          for (let h = 0; h < H; h++) {
            const o = (b * H + h) * n;
            dst.set(src.subarray(o, o + n), (((firstSlot + b) * H + h) * P + pastLengths[b]!) * D);
          }
        }
      }
    }
  }

  setLength(seq: number, len: number): void {
    this.lengths[this.slotOf(seq)] = len;
  }

  /**
   * Copies rows [start, start+n) of a sequence to/from a packed block buffer laid out
   * [layer][k|v][kvH][n][D] (the prefix cache's block format).
   */
  readRows(seq: number, start: number, n: number, out: Float32Array): void {
    this.rows(seq, start, n, out, false);
  }
  writeRows(seq: number, start: number, n: number, src: Float32Array): void {
    this.rows(seq, start, n, src, true);
  }
  private rows(seq: number, start: number, n: number, packed: Float32Array, write: boolean): void {
    const b = this.slotOf(seq);
    const { kvHeads: H, headDim: D, layers } = this.geo;
    const P = this.pcap;
    let o = 0;
    for (let l = 0; l < layers; l++) {
      for (const buf of [this.keys[l]!, this.values[l]!]) {
        for (let h = 0; h < H; h++) {
          const base = ((b * H + h) * P + start) * D;
          if (write) buf.set(packed.subarray(o, o + n * D), base);
          else packed.set(buf.subarray(base, base + n * D), o);
          o += n * D;
        }
      }
    }
  }
}
