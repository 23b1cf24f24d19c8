/**
 * The engine: owns one model's runner, KV pool, prefix cache and scheduler, and runs the step loop.
 * Requests join and leave the running batch between steps; each step is one batched decode or one
 * prefill chunk (see scheduler.ts). Cancellation takes effect at the next step boundary.
 */
import type { FinishReason, GenerateEvent, GenerateParams } from "../../contract/wire";
import { constraintFor } from "./constraint";
import { KvPool } from "./kv-cache";
import type { ModelRunner } from "./model-runner";
import { PrefixCache } from "./prefix-cache";
import { sampleToken, tokenLogprob } from "./sampler";
import { Scheduler } from "./scheduler";
import { AdmissionError, EmbedStopped, Sequence } from "./sequence";
import { type EngineMetrics, type EngineStats, freshMetrics, makeStats } from "./stats";

export type { EngineMetrics } from "./stats";
export { AdmissionError, EmbedStopped } from "./sequence";

export interface EngineOptions {
  maxBatch: number;
  kvBudgetBytes: number;
  prefixCacheBytes: number;
  blockSize: number;
  prefillChunk: number;
  maxQueue: number;
}

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = {
  maxBatch: 8,
  kvBudgetBytes: 512 * 2 ** 20,
  prefixCacheBytes: 256 * 2 ** 20,
  blockSize: 16,
  prefillChunk: 256,
  maxQueue: 64,
};

export class Engine {
  readonly pool: KvPool;
  readonly prefix: PrefixCache;
  readonly sched: Scheduler<Sequence>;
  metrics: EngineMetrics = freshMetrics();
  /** Longest sequence (prompt + completion) this engine serves: model context, bounded by KV memory. */
  readonly contextLength: number;
  private nextId = 1;
  private loop: Promise<void> | null = null;
  private readonly jobs: Array<() => Promise<void>> = [];
  private draining = false;
  /** Test/metrics hook: called after every step with its wall time. */
  onStep: ((kind: "prefill" | "decode", batch: number, seconds: number) => void) | null = null;

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
    });
    this.contextLength = this.pool.maxTokensFor(1);
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
  submit(params: GenerateParams, emit: (ev: GenerateEvent) => void): () => void {
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
    const constraint = constraintFor(
      params,
      this.runner.manifest,
      (msg, param) => new AdmissionError(msg, 400, "unsupported_response_format", param),
    );
    const reserve = Math.min(this.contextLength, params.input_ids.length + params.max_tokens);
    const seq = new Sequence(this.nextId++, params, reserve, emit, constraint);
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
   * One L2-normalised mean-pooled vector per input. Each input is its own job between engine steps
   * (run() takes one job per step), so generations keep decoding while a large request embeds, and
   * an aborted `signal` stops it before the next input (EmbedStopped with the tokens computed so far).
   */
  async embed(inputs: number[][], opts: { signal?: AbortSignal } = {}): Promise<number[][]> {
    const V = this.runner.manifest.vocab_size;
    const H = this.runner.manifest.hidden_size;
    for (const ids of inputs) {
      const bad = ids.find((t) => t >= V);
      if (bad !== undefined)
        throw new AdmissionError(`inputs contains ${bad}, outside the vocabulary (size ${V})`, 400, "invalid_token");
      if (ids.length > this.runner.manifest.context_length) {
        throw new AdmissionError(
          `input of ${ids.length} tokens exceeds the context window`,
          400,
          "context_length_exceeded",
        );
      }
    }
    const out: number[][] = [];
    let computed = 0;
    for (const ids of inputs) {
      // Checked again inside the job: an abort while queued behind decode steps costs nothing.
      if (opts.signal?.aborted) throw new EmbedStopped("cancelled", computed);
      let hs: Float32Array | null;
      try {
        hs = await this.exclusive(async () => (opts.signal?.aborted ? null : this.runner.hidden(ids)));
      } catch (e) {
        console.error(`engine ${this.name}: embed failed: ${(e as Error).message}`);
        throw new EmbedStopped("error", computed);
      }
      if (hs === null) throw new EmbedStopped("cancelled", computed);
      computed += ids.length;
      const v = new Float64Array(H);
      for (let s = 0; s < ids.length; s++) for (let j = 0; j < H; j++) v[j]! += hs[s * H + j]!;
      let norm = 0;
      for (let j = 0; j < H; j++) norm += v[j]! * v[j]!;
      norm = Math.sqrt(norm) || 1;
      out.push(Array.from(v, (x) => x / norm));
    }
    return out;
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
      const plan = this.sched.plan();
      if (plan.kind === "idle") return;
      const t0 = performance.now();
      try {
        if (plan.kind === "prefill") await this.prefillStep(plan.seq, plan.start, plan.len);
        else await this.decodeStep(plan.seqs);
      } catch (e) {
        // A failed step poisons only the sequences in it; the server keeps running.
        console.error(`engine ${this.name}: ${plan.kind} step failed: ${(e as Error).message}`);
        const victims = plan.kind === "prefill" ? [plan.seq] : plan.seqs;
        for (const s of victims) this.finish(s, "error", "inference failed");
      }
      const dt = (performance.now() - t0) / 1000;
      this.metrics.steps[plan.kind]++;
      this.metrics.stepSeconds[plan.kind] += dt;
      const batch = plan.kind === "decode" ? plan.seqs.length : 1;
      if (plan.kind === "decode") this.metrics.decodeBatchSum += batch;
      this.metrics.lastBatch = batch;
      this.onStep?.(plan.kind, batch, dt);
    }
  }

  private reapCancelled(): void {
    const all = [...this.sched.waiting, ...this.sched.decoding];
    if (this.sched.prefilling) all.push(this.sched.prefilling);
    for (const s of all) if (s.cancelled) this.finish(s, "cancelled");
  }

  private admit(): void {
    for (;;) {
      const seq = this.sched.nextAdmission((s) => this.pool.canAdmit(s.reserve));
      if (!seq) return;
      this.pool.admit(seq.id, seq.reserve);
      this.sched.startPrefill(seq);
      seq.tAdmit = performance.now();
      const hit = this.prefix.lookup(seq.params.input_ids, seq.params.cache_salt);
      if (hit.length > 0) {
        const bs = this.prefix.blockSize;
        this.pool.ensureCapacity(Math.max(this.pool.slotCapacity, hit.length * bs + 1));
        hit.forEach((b, i) => {
          this.pool.writeRows(seq.id, i * bs, bs, b.kv);
        });
        seq.cached = hit.length * bs;
        seq.pos = seq.cached;
        this.pool.setLength(seq.id, seq.pos);
      }
    }
  }

  private async prefillStep(seq: Sequence, start: number, len: number): Promise<void> {
    const ids = seq.params.input_ids.slice(start, start + len);
    const logits = await this.runner.step(this.pool, {
      ids,
      batch: 1,
      seqLen: len,
      pastLengths: [start],
      firstSlot: this.pool.slotOf(seq.id),
      logitsRows: [len - 1],
    });
    seq.pos = start + len;
    this.pool.setLength(seq.id, seq.pos);
    if (seq.pos < seq.promptLen) return;
    this.cachePrompt(seq);
    this.sched.promote(seq);
    seq.tFirst = performance.now();
    this.accept(seq, logits.subarray(0, this.runner.manifest.vocab_size));
  }

  private async decodeStep(seqs: Sequence[]): Promise<void> {
    const ordered = [...seqs].sort((a, b) => this.pool.slotOf(a.id) - this.pool.slotOf(b.id));
    const first = this.pool.slotOf(ordered[0]!.id);
    const logits = await this.runner.step(this.pool, {
      ids: ordered.map((s) => s.lastToken),
      batch: ordered.length,
      seqLen: 1,
      pastLengths: ordered.map((s) => s.pos),
      firstSlot: first,
      logitsRows: ordered.map((_, i) => i),
    });
    const V = this.runner.manifest.vocab_size;
    // Every length first: accept() may finish a sequence, and its release moves another slot, copying
    // only the rows its length counts (a batch-mate's row from this step would be left behind).
    for (const s of ordered) this.pool.setLength(s.id, ++s.pos);
    ordered.forEach((s, i) => {
      this.accept(s, logits.subarray(i * V, (i + 1) * V));
    });
  }

  /** Samples the next token and decides whether the sequence goes on. */
  private accept(seq: Sequence, row: Float32Array): void {
    const p = seq.params;
    const c = seq.constraint;
    if (c && !c.apply(row)) {
      this.finish(seq, "error", "response_format allows no token here");
      return;
    }
    const tok = sampleToken(row, p, seq.rng);
    if (tok === this.runner.manifest.eos_token_id || p.stop_token_ids.includes(tok)) {
      this.finish(seq, "stop");
      return;
    }
    seq.generated.push(tok);
    seq.lastToken = tok;
    const lp = p.logprobs ? [tokenLogprob(row, tok, p.top_logprobs ?? 0)] : undefined;
    seq.emit(lp ? { type: "tokens", ids: [tok], logprobs: lp } : { type: "tokens", ids: [tok] });
    c?.accept(tok);
    // A complete document can only be followed by EOS: stop now rather than spend a step sampling it.
    if (c?.complete) this.finish(seq, "stop");
    else if (seq.generated.length >= p.max_tokens) this.finish(seq, "length");
    else if (seq.promptLen + seq.generated.length >= seq.reserve) this.finish(seq, "model_length");
  }

  /** Puts the prompt's full blocks into the prefix cache (their KV rows are final once prefilled). */
  private cachePrompt(seq: Sequence): void {
    if (this.prefix.budgetBytes <= 0) return;
    const bs = this.prefix.blockSize;
    const ids = seq.params.input_ids;
    const hashes = this.prefix.chain(ids, seq.params.cache_salt);
    const m = this.runner.manifest;
    const floats = m.num_layers * 2 * m.num_kv_heads * bs * m.head_dim;
    let parent = "root";
    hashes.forEach((h, i) => {
      if (!this.prefix.has(h)) {
        const kv = new Float32Array(floats);
        this.pool.readRows(seq.id, i * bs, bs, kv);
        this.prefix.insert({ hash: h, parent, tokens: Int32Array.from(ids.slice(i * bs, (i + 1) * bs)), kv });
      }
      parent = h;
    });
  }

  private finish(seq: Sequence, reason: FinishReason, error?: string): void {
    if (seq.state === "finished") return;
    const wasRunning = seq.state === "prefill" || seq.state === "decode";
    this.sched.remove(seq);
    if (wasRunning) this.pool.release(seq.id);
    const now = performance.now();
    const admit = seq.tAdmit || now;
    const first = seq.tFirst || now;
    this.metrics.requests[reason]++;
    this.metrics.promptTokens += seq.promptLen;
    this.metrics.cachedTokens += seq.cached;
    this.metrics.completionTokens += seq.generated.length;
    seq.emit({
      type: "done",
      finish_reason: reason,
      usage: { prompt_tokens: seq.promptLen, cached_tokens: seq.cached, completion_tokens: seq.generated.length },
      timings: {
        queue_ms: round(admit - seq.tEnqueue),
        prefill_ms: seq.tAdmit ? round(first - admit) : 0,
        decode_ms: seq.tFirst ? round(now - first) : 0,
      },
      ...(error ? { error } : {}),
    });
  }
}

const round = (ms: number) => Math.round(ms * 100) / 100;
