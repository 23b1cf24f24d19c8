/**
 * Continuous-batching step policy (pure: no model, no KV memory), following GroupQueryAttention's CPU rules:
 * a step is EITHER one batched decode (S = 1) of every decoding sequence OR one prefill chunk of the single
 * prefilling sequence (S > 1 with past needs batch 1). Sequences join and leave only between steps.
 * Prefill chunks and decode steps alternate so a long prompt cannot starve running streams.
 * A decoding sequence with more than one token to feed (a sampled token and the run the grammar forces
 * after it, jump-forward) gets a batch-1 "chunk" step, at most one per decode round, so a run of forced
 * tokens costs one model call and its batch-mates still step every round. Whether a sequence is chunked
 * depends only on its own tokens, never on its batch-mates (batch invariance).
 *
 * Priority classes: "batch" sequences (Batch API lines) only use capacity interactive ones leave idle.
 *  - Admission: an interactive sequence is always admitted before any waiting batch one, and batch sequences
 *    hold at most `batchSlots` of the maxBatch slots, so an arriving interactive request finds a free slot
 *    instead of queueing behind a batch.
 *  - Held, not restarted: while an interactive sequence prefills, decode steps that would carry only batch
 *    sequences are skipped (its prompt is not interleaved with their steps); they keep their KV and resume
 *    at the same position afterwards. A decode step runs every decoding sequence's KV row (slots are dense;
 *    one sitting out still costs its row), so batch sequences already decoding ride along interactive
 *    decode steps: `batchSlots` bounds how much they can slow them.
 */
export type Priority = "interactive" | "batch";

export interface SchedSeq {
  readonly id: number;
  /** Absent: interactive. */
  readonly priority?: Priority;
  readonly promptLen: number;
  /** Rows already in the KV cache (prefix-cache hits included). */
  pos: number;
  state: "waiting" | "prefill" | "decode" | "finished";
  /** Tokens it has to feed: 1 (the default) rides the next decode step, more need a chunk step, 0 waits. */
  readonly feedLen?: number;
  /** The decode round of its last chunk step. */
  chunkRound?: number;
}

export type StepPlan<S extends SchedSeq> =
  | { kind: "prefill"; seq: S; start: number; len: number }
  /** Every decoding sequence (KV slots are dense); those whose feedLen is not 1 sit this step out. */
  | { kind: "decode"; seqs: S[] }
  | { kind: "chunk"; seq: S }
  | { kind: "idle" };

export interface SchedulerOptions {
  maxBatch: number;
  prefillChunk: number;
  maxQueue: number;
  /**
   * Slots batch sequences may hold at once (default 1). Each one rides along every interactive decode step,
   * and on a CPU a decode step's cost grows with its rows (bench:batch: 1 keeps an interactive request
   * within ~1.25x of idle, 4 of 8 gave ~2.2x); where decode is memory-bound (a GPU) raise it (--batch-slots).
   */
  batchSlots?: number;
}

const isBatch = (s: SchedSeq) => s.priority === "batch";

export class Scheduler<S extends SchedSeq> {
  readonly waiting: S[] = [];
  /** Decoding sequences (in KV the prefilling one is always the last slot, after all of these). */
  readonly decoding: S[] = [];
  prefilling: S | null = null;
  private lastKind: "prefill" | "decode" | "chunk" | null = null;
  /** Decode steps so far: a sequence gets at most one chunk step per round. */
  private round = 0;

  constructor(readonly opts: SchedulerOptions) {}

  get running(): number {
    return this.decoding.length + (this.prefilling ? 1 : 0);
  }
  get queueFull(): boolean {
    return this.waiting.length >= this.opts.maxQueue;
  }

  enqueue(seq: S): void {
    seq.state = "waiting";
    this.waiting.push(seq);
  }

  get batchSlots(): number {
    return Math.max(1, Math.min(this.opts.maxBatch, this.opts.batchSlots ?? 1));
  }

  /** Batch sequences holding a slot (prefilling or decoding). */
  get batchRunning(): number {
    return this.decoding.filter(isBatch).length + (this.prefilling && isBatch(this.prefilling) ? 1 : 0);
  }

  /**
   * The next sequence to start now (no other prefill in flight, batch not full): the oldest interactive one,
   * else, while no interactive one waits and batch sequences hold fewer than batchSlots, the oldest batch one.
   * `fits` asks the KV manager; FIFO within a class: a big request at its head is not overtaken.
   */
  nextAdmission(fits: (seq: S) => boolean): S | null {
    if (this.prefilling || this.running >= this.opts.maxBatch) return null;
    const interactive = this.waiting.find((s) => !isBatch(s));
    const head =
      interactive ?? (this.batchRunning < this.batchSlots ? this.waiting.find((s) => isBatch(s)) : undefined);
    if (!head || !fits(head)) return null;
    return head;
  }

  /** Moves the head of the queue into prefill (its slot is the last one). */
  startPrefill(seq: S): void {
    const i = this.waiting.indexOf(seq);
    if (i >= 0) this.waiting.splice(i, 1);
    seq.state = "prefill";
    this.prefilling = seq;
  }

  promote(seq: S): void {
    if (this.prefilling !== seq) throw new Error("only the prefilling sequence can start decoding");
    this.prefilling = null;
    seq.state = "decode";
    this.decoding.push(seq);
  }

  /** Removes a sequence wherever it is (the engine orders decode batches by KV slot, not by this list). */
  remove(seq: S): void {
    seq.state = "finished";
    const w = this.waiting.indexOf(seq);
    if (w >= 0) this.waiting.splice(w, 1);
    if (this.prefilling === seq) this.prefilling = null;
    const d = this.decoding.indexOf(seq);
    if (d >= 0) this.decoding.splice(d, 1);
  }

  plan(): StepPlan<S> {
    const p = this.prefilling;
    // An interactive prefill is not interleaved with steps that would decode only batch sequences.
    const holdBatch = p !== null && !isBatch(p) && this.decoding.every(isBatch);
    const canDecode = this.decoding.length > 0 && !holdBatch;
    if (p && (!canDecode || this.lastKind !== "prefill")) {
      this.lastKind = "prefill";
      const len = Math.min(this.opts.prefillChunk, p.promptLen - p.pos);
      return { kind: "prefill", seq: p, start: p.pos, len };
    }
    const chunk = this.decoding.find((s) => (s.feedLen ?? 1) > 1 && (s.chunkRound ?? -1) < this.round);
    if (chunk) return this.chunk(chunk);
    if (this.decoding.some((s) => (s.feedLen ?? 1) === 1)) {
      this.lastKind = "decode";
      this.round++;
      return { kind: "decode", seqs: [...this.decoding] };
    }
    // Only chunked sequences are left: the next round starts with them.
    const again = this.decoding.find((s) => (s.feedLen ?? 1) > 1);
    if (again) {
      this.round++;
      return this.chunk(again);
    }
    return { kind: "idle" };
  }

  private chunk(seq: S): StepPlan<S> {
    this.lastKind = "chunk";
    seq.chunkRound = this.round;
    return { kind: "chunk", seq };
  }
}
