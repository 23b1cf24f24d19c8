/**
 * Continuous-batching step policy (pure: no model, no KV memory), following GroupQueryAttention's CPU rules:
 * a step is EITHER one batched decode (S = 1) of every decoding sequence OR one prefill chunk of the single
 * prefilling sequence (S > 1 with past needs batch 1). Sequences join and leave only between steps.
 * Prefill chunks and decode steps alternate so a long prompt cannot starve running streams.
 */
export interface SchedSeq {
  readonly id: number;
  readonly promptLen: number;
  /** Rows already in the KV cache (prefix-cache hits included). */
  pos: number;
  state: "waiting" | "prefill" | "decode" | "finished";
}

export type StepPlan<S extends SchedSeq> =
  | { kind: "prefill"; seq: S; start: number; len: number }
  | { kind: "decode"; seqs: S[] }
  | { kind: "idle" };

export interface SchedulerOptions {
  maxBatch: number;
  prefillChunk: number;
  maxQueue: number;
}

export class Scheduler<S extends SchedSeq> {
  readonly waiting: S[] = [];
  /** Decoding sequences (in KV the prefilling one is always the last slot, after all of these). */
  readonly decoding: S[] = [];
  prefilling: S | null = null;
  private lastKind: "prefill" | "decode" | null = null;

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

  /**
   * Head of the queue, when a new sequence may start now (no other prefill in flight, batch not full).
   * `fits` asks the KV manager; FIFO: a big request at the head is not overtaken.
   */
  nextAdmission(fits: (seq: S) => boolean): S | null {
    if (this.prefilling || this.running >= this.opts.maxBatch) return null;
    const head = this.waiting[0];
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
    const canDecode = this.decoding.length > 0;
    if (p && (!canDecode || this.lastKind !== "prefill")) {
      this.lastKind = "prefill";
      const len = Math.min(this.opts.prefillChunk, p.promptLen - p.pos);
      return { kind: "prefill", seq: p, start: p.pos, len };
    }
    if (canDecode) {
      this.lastKind = "decode";
      return { kind: "decode", seqs: [...this.decoding] };
    }
    return { kind: "idle" };
  }
}
