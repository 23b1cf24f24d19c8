/**
 * The engine: owns one model's runner, KV pool, prefix cache and scheduler, and runs the step loop.
 * Requests join and leave the running batch between steps; each step is one batched decode or one
 * prefill chunk (see scheduler.ts). Cancellation takes effect at the next step boundary.
 */
import type { FinishReason, GenerateParams } from "../../contract/wire";
import { formatFor } from "./constraint";
import { KvPool } from "./kv-cache";
import type { ModelRunner } from "./model-runner";
import { PrefixCache } from "./prefix-cache";
import { loadPrefix, storePrefix } from "./prefix-kv";
import { Scheduler } from "./scheduler";
import { TokenFlow } from "./token-flow";
import { AdmissionError, type EngineOutput, Sequence } from "./sequence";
import { embedInputs } from "./embed";
import { type EngineMetrics, type EngineStats, freshMetrics, makeStats } from "./stats";

export type { EngineMetrics } from "./stats";
export { AdmissionError, EmbedStopped, type EngineOutput } from "./sequence";

export interface EngineOptions {
  maxBatch: number;
  kvBudgetBytes: number;
  prefixCacheBytes: number;
  blockSize: number;
  prefillChunk: number;
  maxQueue: number;
  /**
   * Append the tokens a response_format forces without sampling them (jump-forward): "chunk" (the default,
   * or true) feeds a forced run as one batch-1 chunk step; "ride" feeds it one token per decode step beside
   * the batch (no sampling or mask for those tokens, numerically the same as decoding them); false: off.
   */
  jumpForward?: boolean | "chunk" | "ride";
  /** Slots "batch"-priority sequences may hold at once (scheduler.ts); default the scheduler's. */
  batchSlots?: number;
  /**
   * Benchmarks only: a sampled row is drawn as usual (the sampler's work done, the request's rng advanced) and
   * the draw is then replaced by the greedy token, so a sampled run decodes the same tokens as a greedy one and
   * the two differ by the sampler's cost alone. On a random-weight model greedy output falls into short loops
   * whose rows route to the same experts, which makes greedy steps cheaper for a reason sampling has no part in.
   */
  keepGreedyTokens?: boolean;
}

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = {
  maxBatch: 8,
  kvBudgetBytes: 512 * 2 ** 20,
  prefixCacheBytes: 256 * 2 ** 20,
  blockSize: 16,
  prefillChunk: 256,
  maxQueue: 64,
};

/** Steps a sequence may sit out waiting for its mask before its mask is computed whatever it costs. */
const MAX_HELD_STEPS = 4;

export class Engine {
  readonly pool: KvPool;
  readonly prefix: PrefixCache;
  readonly sched: Scheduler<Sequence>;
  metrics: EngineMetrics = freshMetrics();
  /** Longest sequence (prompt + completion) this engine serves: model context, bounded by KV memory. */
  readonly contextLength: number;
  private nextId = 1;
  private readonly flow: TokenFlow;
  private loop: Promise<void> | null = null;
  private readonly jobs: Array<() => Promise<void>> = [];
  private draining = false;
  /** Test/metrics hook: called after every step with its wall time. */
  onStep: ((kind: "prefill" | "decode", batch: number, seconds: number) => void) | null = null;
  /** Recent model-call time (ms): how long mask work may run beside the next call. */
  private runMs = 5;

  constructor(
    readonly runner: ModelRunner,
    readonly opts: EngineOptions = DEFAULT_ENGINE_OPTIONS,
  ) {
    const m = runner.manifest;
    this.pool = new KvPool(
      { layers: m.num_layers, kvHeads: m.num_kv_heads, headDim: m.head_dim, maxSeq: m.context_length },
      opts.kvBudgetBytes,
      opts.maxBatch,
    );
    this.prefix = new PrefixCache(opts.blockSize, opts.prefixCacheBytes);
    this.sched = new Scheduler<Sequence>({
      maxBatch: opts.maxBatch,
      prefillChunk: opts.prefillChunk,
      maxQueue: opts.maxQueue,
      ...(opts.batchSlots !== undefined ? { batchSlots: opts.batchSlots } : {}),
    });
    this.contextLength = this.pool.maxTokensFor(1);
    this.flow = new TokenFlow(
      m.eos_token_id,
      (opts.jumpForward ?? true) !== false,
      opts.keepGreedyTokens === true,
      () => this.metrics,
      (seq, reason, error) => this.finish(seq, reason, error),
    );
  }

  get name(): string {
    return this.runner.manifest.name;
  }
  get queueDepth(): number {
    return this.sched.waiting.length;
  }
  get runningCount(): number {
    return this.sched.running;
  }
  /** One consistent read of queue, KV, prefix cache and counters (engine/stats.ts). */
  stats(): EngineStats {
    return makeStats({
      model: this.name,
      waiting: this.sched.waiting.length,
      running: this.sched.running,
      pool: this.pool,
      prefix: this.prefix,
      metrics: this.metrics,
    });
  }

  /**
   * Validates and queues a generation. Prompts must leave room for one new token (else 400); a prompt +
   * max_tokens beyond the context is clamped and finishes with "model_length". Returns a cancel function.
   */
  submit(params: GenerateParams, emit: (out: EngineOutput) => void): () => void {
    if (this.draining) throw new AdmissionError("server is shutting down", 503, "shutting_down");
    const V = this.runner.manifest.vocab_size;
    const bad = params.input_ids.find((t) => t >= V);
    if (bad !== undefined)
      throw new AdmissionError(`input_ids contains ${bad}, outside the vocabulary (size ${V})`, 400, "invalid_token");
    if (params.input_ids.length >= this.contextLength) {
      throw new AdmissionError(
        `prompt of ${params.input_ids.length} tokens leaves no room in the context window of ${this.contextLength}`,
        400,
        "context_length_exceeded",
      );
    }
    if (this.sched.queueFull) throw new AdmissionError("request queue is full", 429, "queue_full");
    const f = formatFor(
      params,
      this.runner.manifest,
      (msg, param) => new AdmissionError(msg, 400, "unsupported_response_format", param),
    );
    const reserve = Math.min(this.contextLength, params.input_ids.length + params.max_tokens);
    const seq = new Sequence(this.nextId++, params, reserve, emit, f.constraint, f.trigger, f.format);
    seq.ride = this.opts.jumpForward === "ride";
    this.sched.enqueue(seq);
    this.kick();
    return () => {
      seq.cancelled = true;
      this.kick();
    };
  }

  resetMetrics(): void {
    this.metrics = freshMetrics();
  }

  /** Runs `fn` between steps, exclusively with the session (embeddings, warm-up). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.jobs.push(() => fn().then(resolve, reject));
      this.kick();
    });
  }

  /**
   * One L2-normalised mean-pooled vector per input, each input its own job between engine steps
   * (embed.ts), so generations keep decoding while a large request embeds.
   */
  embed(inputs: number[][], opts: { signal?: AbortSignal } = {}): Promise<number[][]> {
    return embedInputs(this.runner, (fn) => this.exclusive(fn), inputs, opts);
  }

  /** Stops admitting; after `graceMs` cancels whatever still runs. Resolves when idle. */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    const timer = setTimeout(() => this.cancelAll(), graceMs);
    while (this.sched.running > 0 || this.sched.waiting.length > 0 || this.loop) {
      await (this.loop ?? new Promise((r) => setTimeout(r, 10)));
    }
    clearTimeout(timer);
  }

  cancelAll(): void {
    for (const s of [...this.sched.waiting, ...this.sched.decoding]) s.cancelled = true;
    if (this.sched.prefilling) this.sched.prefilling.cancelled = true;
    this.kick();
  }

  private kick(): void {
    if (this.loop) return;
    this.loop = this.run().finally(() => {
      this.loop = null;
      if (this.hasWork()) this.kick();
    });
  }

  private hasWork(): boolean {
    return this.jobs.length > 0 || this.sched.waiting.length > 0 || this.sched.running > 0;
  }

  private async run(): Promise<void> {
    while (this.hasWork()) {
      // One job per step, so a long series of jobs (embed inputs) interleaves with decode steps.
      if (this.jobs.length > 0) await this.jobs.shift()!();
      this.reapCancelled();
      this.admit();
      this.releaseHeld();
      const plan = this.sched.plan();
      if (plan.kind === "idle") {
        // Only sequences waiting for a mask are left: compute one now (nothing runs beside it).
        const held = this.sched.decoding.find((s) => s.held);
        if (!held) return;
        held.constraint!.prepare();
        continue;
      }
      const t0 = performance.now();
      const kind = plan.kind === "prefill" ? "prefill" : "decode";
      let batch = 1;
      try {
        if (plan.kind === "prefill") await this.prefillStep(plan.seq, plan.start, plan.len);
        else if (plan.kind === "chunk") batch = await this.chunkStep(plan.seq);
        else batch = await this.decodeStep(plan.seqs);
      } catch (e) {
        // A failed step poisons only the sequences in it; the server keeps running.
        console.error(`engine ${this.name}: ${plan.kind} step failed: ${(e as Error).message}`);
        const victims = plan.kind === "decode" ? plan.seqs : [plan.seq];
        for (const s of victims) this.finish(s, "error", "inference failed");
      }
      const dt = (performance.now() - t0) / 1000;
      this.metrics.steps[kind]++;
      this.metrics.stepSeconds[kind] += dt;
      if (plan.kind === "chunk") this.metrics.chunkSteps++;
      // Tokens fed through the model by decode and chunk steps (forced tokens included).
      if (kind === "decode") this.metrics.decodeBatchSum += batch;
      this.metrics.lastBatch = batch;
      this.onStep?.(kind, batch, dt);
    }
  }

  private reapCancelled(): void {
    const all = [...this.sched.waiting, ...this.sched.decoding];
    if (this.sched.prefilling) all.push(this.sched.prefilling);
    for (const s of all) if (s.cancelled) this.finish(s, "cancelled");
  }

  /** Sequences whose held row's mask is now known sample from it. */
  private releaseHeld(): void {
    for (const s of [...this.sched.decoding]) {
      if (!s.held || !s.constraint!.ready) continue;
      const row = s.held;
      s.held = null;
      s.heldSteps = 0;
      this.flow.sample(s, row);
      this.flush(s);
    }
  }

  /**
   * Mask work beside a model call (which runs off the JS thread): the masks the sequences of this step
   * will sample with, then those of sequences that fell behind, while about one call's time is left. A
   * mask expected to cost more than what is left waits (its sequence sits out steps, not its batch-mates),
   * unless its sequence has already sat out MAX_HELD_STEPS steps: a slow-mask sequence then delays the
   * others by at most one mask every few steps.
   */
  private async overlapMasks<T>(call: Promise<T>, next: Sequence[]): Promise<T> {
    const t0 = performance.now();
    for (const s of [...next, ...this.sched.decoding.filter((d) => d.held)]) {
      const c = s.constraint;
      if (!c || c.ready) continue;
      const left = this.runMs - (performance.now() - t0);
      if (c.lastCost > left && s.heldSteps < MAX_HELD_STEPS) continue;
      c.prepare();
    }
    const out = await call;
    this.runMs = 0.8 * this.runMs + 0.2 * (performance.now() - t0);
    for (const s of this.sched.decoding) if (s.held) s.heldSteps++;
    return out;
  }

  private admit(): void {
    for (;;) {
      const seq = this.sched.nextAdmission((s) => this.pool.canAdmit(s.reserve));
      if (!seq) return;
      this.pool.admit(seq.id, seq.reserve);
      this.sched.startPrefill(seq);
      seq.tAdmit = performance.now();
      seq.cached = seq.pos = loadPrefix(this.pool, this.prefix, seq);
    }
  }

  private async prefillStep(seq: Sequence, start: number, len: number): Promise<void> {
    const ids = seq.params.input_ids.slice(start, start + len);
    const last = start + len >= seq.promptLen;
    const call = this.runner.step(this.pool, {
      ids,
      batch: 1,
      seqLen: len,
      pastLengths: [start],
      firstSlot: this.pool.slotOf(seq.id),
      logitsRows: [len - 1],
    });
    const logits = await this.overlapMasks(call, last ? [seq] : []);
    seq.pos = start + len;
    this.pool.setLength(seq.id, seq.pos);
    if (seq.pos < seq.promptLen) return;
    storePrefix(this.pool, this.prefix, this.runner.manifest, seq);
    this.sched.promote(seq);
    seq.tFirst = performance.now();
    this.flow.row(seq, logits.subarray(0, this.runner.manifest.vocab_size));
    this.flush(seq);
  }

  /**
   * One batched decode over every decoding sequence (their KV slots are dense). A sequence with one token
   * to feed steps; the others (a forced run waiting for its chunk, a row waiting for its mask) sit out on
   * a throwaway row at their current length, which their next real row overwrites.
   */
  private async decodeStep(seqs: Sequence[]): Promise<number> {
    const ordered = [...seqs].sort((a, b) => this.pool.slotOf(a.id) - this.pool.slotOf(b.id));
    const active = ordered.filter((s) => s.feedLen === 1);
    const first = this.pool.slotOf(ordered[0]!.id);
    const call = this.runner.step(this.pool, {
      ids: ordered.map((s) => (s.feedLen === 1 ? s.feed[0]! : 0)),
      batch: ordered.length,
      seqLen: 1,
      pastLengths: ordered.map((s) => s.pos),
      firstSlot: first,
      logitsRows: ordered.map((_, i) => i),
    });
    const logits = await this.overlapMasks(
      call,
      active.filter((s) => s.awaited.length === 0),
    );
    const V = this.runner.manifest.vocab_size;
    // Every length first: a row may finish a sequence, and its release moves another slot, copying
    // only the rows its length counts (a batch-mate's row from this step would be left behind).
    for (const s of active) this.pool.setLength(s.id, ++s.pos);
    ordered.forEach((s, i) => {
      if (s.feedLen !== 1 || s.state === "finished") return;
      s.feed.shift();
      this.flow.row(s, logits.subarray(i * V, (i + 1) * V));
      this.flush(s);
    });
    return active.length;
  }

  /** A batch-1 step over a sequence's sampled token and the run forced after it (jump-forward). */
  private async chunkStep(seq: Sequence): Promise<number> {
    const S = seq.feed.length;
    const allRows = seq.awaited.length > seq.awaitedAt;
    const call = this.runner.step(this.pool, {
      ids: seq.feed,
      batch: 1,
      seqLen: S,
      pastLengths: [seq.pos],
      firstSlot: this.pool.slotOf(seq.id),
      logitsRows: allRows ? Array.from({ length: S }, (_, i) => i) : [S - 1],
    });
    const logits = await this.overlapMasks(call, seq.endsAfterRun ? [] : [seq]);
    seq.pos += S;
    this.pool.setLength(seq.id, seq.pos);
    const V = this.runner.manifest.vocab_size;
    if (!allRows) seq.feed = [seq.feed[S - 1]!];
    const rows = seq.feed.length;
    for (let i = 0; i < rows && seq.state !== "finished"; i++) {
      seq.feed.shift();
      this.flow.row(seq, logits.subarray(i * V, (i + 1) * V));
    }
    this.flush(seq);
    return S;
  }

  /** Emits what the sequence's last step produced (the finish output carries its own). */
  private flush(seq: Sequence): void {
    if (seq.outIds.length > 0 && seq.state !== "finished") seq.emit(seq.takeOutput());
  }

  private finish(seq: Sequence, reason: FinishReason, error?: string): void {
    if (seq.state === "finished") return;
    const wasRunning = seq.state === "prefill" || seq.state === "decode";
    this.sched.remove(seq);
    if (wasRunning) this.pool.release(seq.id);
    this.metrics.requests[reason]++;
    this.metrics.promptTokens += seq.promptLen;
    this.metrics.cachedTokens += seq.cached;
    this.metrics.completionTokens += seq.generated.length;
    seq.emit(seq.takeOutput({ reason, error }));
  }
}
