/**
 * GET /metrics (Prometheus text, prom-client).
 *
 * Two kinds of source, kept apart:
 * - Histograms observe events as they happen: each generation's stream (time to first token, inter-token
 *   latency, queue wait, end-to-end) and each engine step (duration, batch size). Distributions cannot
 *   be rebuilt from totals afterwards.
 * - Counters and gauges are read from ONE snapshot per engine per scrape (Engine.stats(), vLLM's
 *   make_stats), never from the engine's internals.
 *
 * `moe_edge_*` names follow vLLM's (`vllm:time_to_first_token_seconds` → `moe_edge_time_to_first_token_seconds`,
 * label `model_name`), so vLLM dashboards map over. One name per series: steps and batch sizes are the
 * step histograms' _count and _sum, running and waiting requests the num_requests_* gauges.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { GenerateEvent } from "../../contract/wire";
import type { Engine } from "../engine/engine";
import type { EngineStats } from "../engine/stats";

/** The usage witness's gauges (gpu-backend/usage/). */
export interface UsageStats {
  pending: number;
  segments: number;
}

export interface MetricsSources {
  engines: () => Iterable<Engine>;
  /** Generate and embed requests that POST /v1/cancel can reach now. */
  inFlight: () => number;
  usage: () => UsageStats | undefined;
}

type Labels = Record<string, string>;
type Rows = Array<[Labels, number]>;

/** vLLM's request-latency buckets, with sub-10 ms ones added: a dev-model decode step here is ~2 ms. */
const LATENCY = [
  0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640,
];
const STEP = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BATCH = [1, 2, 4, 8, 16, 32, 64, 128, 256];

export class BackendMetrics {
  readonly registry = new Registry();
  readonly contentType = this.registry.contentType;
  /** Filled at the start of each scrape; every collect() below reads this, so one scrape is consistent. */
  private snap: EngineStats[] = [];
  private readonly attached = new WeakSet<Engine>();
  private readonly httpRequests: Counter<"route" | "status">;
  private readonly ttft: Histogram<"model_name">;
  private readonly itl: Histogram<"model_name">;
  private readonly queue: Histogram<"model_name">;
  private readonly e2e: Histogram<"model_name">;
  private readonly stepTime: Histogram<"model_name" | "kind">;
  private readonly batch: Histogram<"model_name" | "kind">;

  constructor(private readonly src: MetricsSources) {
    const registers = [this.registry];
    // process_resident_memory_bytes and friends: the soak run reads RSS from here.
    collectDefaultMetrics({ register: this.registry });
    const hist = <L extends string>(name: string, help: string, buckets: number[], labelNames: readonly L[]) =>
      new Histogram<L>({ name, help, buckets, labelNames, registers });
    const perModel = ["model_name"] as const;
    this.ttft = hist(
      "moe_edge_time_to_first_token_seconds",
      "Time from request arrival to its first generated token.",
      LATENCY,
      perModel,
    );
    this.itl = hist(
      "moe_edge_inter_token_latency_seconds",
      "Time between consecutive generated tokens of one request.",
      LATENCY,
      perModel,
    );
    this.queue = hist(
      "moe_edge_request_queue_time_seconds",
      "Time a request waited for a KV slot before its prefill began.",
      LATENCY,
      perModel,
    );
    this.e2e = hist(
      "moe_edge_e2e_request_latency_seconds",
      "Time from request arrival to its final event.",
      LATENCY,
      perModel,
    );
    this.stepTime = hist(
      "moe_edge_step_duration_seconds",
      "Wall time of one engine step (a prefill chunk or a batched decode).",
      STEP,
      ["model_name", "kind"] as const,
    );
    this.batch = hist("moe_edge_batch_size", "Sequences in one engine step (a prefill chunk is always 1).", BATCH, [
      "model_name",
      "kind",
    ] as const);
    this.httpRequests = new Counter({
      name: "moe_edge_http_requests_total",
      help: "HTTP requests by route and status.",
      labelNames: ["route", "status"] as const,
      registers,
    });
    this.snapshotSeries();
  }

  /** One scrape: a fresh snapshot of every engine, then the exposition. */
  async render(): Promise<string> {
    this.snap = [...this.src.engines()].map((e) => e.stats());
    return this.registry.metrics();
  }

  http(route: string, status: number): void {
    this.httpRequests.inc({ route, status: String(status) });
  }

  /**
   * An observer for one generation's events, created when the request arrives (TTFT counts from here,
   * as vLLM counts from arrival). Also starts watching the engine's steps the first time it is used:
   * warm-up has run by then, so its steps never reach the histograms.
   */
  generation(engine: Engine): (ev: GenerateEvent) => void {
    this.watchSteps(engine);
    const model = { model_name: engine.name };
    const arrived = performance.now();
    let last = 0;
    return (ev) => {
      const now = performance.now();
      if (ev.type === "tokens") {
        if (last === 0) this.ttft.observe(model, (now - arrived) / 1000);
        else this.itl.observe(model, (now - last) / 1000);
        last = now;
        return;
      }
      if (ev.type === "done") {
        this.queue.observe(model, ev.timings.queue_ms / 1000);
        this.e2e.observe(model, (now - arrived) / 1000);
      }
    };
  }

  private watchSteps(engine: Engine): void {
    if (this.attached.has(engine)) return;
    this.attached.add(engine);
    const prev = engine.onStep;
    engine.onStep = (kind, size, seconds) => {
      prev?.(kind, size, seconds);
      this.stepTime.observe({ model_name: engine.name, kind }, seconds);
      this.batch.observe({ model_name: engine.name, kind }, size);
    };
  }

  /** Counters and gauges whose values are read from the scrape's snapshot. */
  private snapshotSeries(): void {
    const registers = [this.registry];
    const per =
      (f: (s: EngineStats) => number): (() => Rows) =>
      () =>
        this.snap.map((s) => [{ model_name: s.model }, f(s)]);
    // A counter set from a cumulative total: reset and re-add on every scrape (the engine owns the count).
    const series = (type: "counter" | "gauge", name: string, help: string, labelNames: string[], rows: () => Rows) => {
      if (type === "gauge") {
        new Gauge({
          name,
          help,
          labelNames,
          registers,
          collect() {
            this.reset();
            for (const [l, v] of rows()) this.set(l, finite(v));
          },
        });
      } else {
        new Counter({
          name,
          help,
          labelNames,
          registers,
          collect() {
            this.reset();
            for (const [l, v] of rows()) this.inc(l, finite(v));
          },
        });
      }
    };
    const m = ["model_name"];
    series(
      "counter",
      "moe_edge_prompt_tokens_total",
      "Prompt tokens of finished generations.",
      m,
      per((s) => s.counters.promptTokens),
    );
    series(
      "counter",
      "moe_edge_prompt_tokens_cached_total",
      "Prompt tokens of finished generations served from the prefix cache.",
      m,
      per((s) => s.counters.cachedTokens),
    );
    series(
      "counter",
      "moe_edge_generation_tokens_total",
      "Generated tokens.",
      m,
      per((s) => s.counters.completionTokens),
    );
    series(
      "counter",
      "moe_edge_forced_tokens_total",
      "Generated tokens a response_format grammar forced, appended without sampling (jump-forward).",
      m,
      per((s) => s.counters.forcedTokens),
    );
    series(
      "counter",
      "moe_edge_chunk_steps_total",
      "Batch-1 steps that fed a sampled token together with the forced run after it.",
      m,
      per((s) => s.counters.chunkSteps),
    );
    series(
      "counter",
      "moe_edge_num_preemptions_total",
      "Sequences preempted for KV space (always 0: KV is reserved at admission).",
      m,
      per((s) => s.preemptions),
    );
    series(
      "counter",
      "moe_edge_request_success_total",
      "Finished generations by finish reason.",
      ["model_name", "finished_reason"],
      () =>
        this.snap.flatMap((s) =>
          Object.entries(s.counters.requests).map(([r, v]): [Labels, number] => [
            { model_name: s.model, finished_reason: r },
            v,
          ]),
        ),
    );
    series(
      "counter",
      "moe_edge_prefix_cache_queries_total",
      "Prompt tokens looked up in the prefix cache.",
      m,
      per((s) => s.prefix.queriedTokens),
    );
    series(
      "counter",
      "moe_edge_prefix_cache_hits_total",
      "Prompt tokens found in the prefix cache.",
      m,
      per((s) => s.prefix.hitTokens),
    );
    series(
      "gauge",
      "moe_edge_prefix_cache_hit_rate",
      "Prompt tokens found in the prefix cache / prompt tokens looked up, since start.",
      m,
      per((s) => (s.prefix.queriedTokens ? s.prefix.hitTokens / s.prefix.queriedTokens : 0)),
    );
    series(
      "gauge",
      "moe_edge_num_requests_running",
      "Sequences holding a KV slot.",
      m,
      per((s) => s.running),
    );
    series(
      "gauge",
      "moe_edge_num_requests_waiting",
      "Requests waiting for a KV slot.",
      m,
      per((s) => s.waiting),
    );
    series(
      "gauge",
      "moe_edge_kv_cache_blocks_used",
      "KV blocks (of --block-size tokens) holding written rows.",
      m,
      per((s) => s.kv.blocksUsed),
    );
    series(
      "gauge",
      "moe_edge_kv_cache_blocks_free",
      "KV blocks (of --block-size tokens) not holding rows.",
      m,
      per((s) => s.kv.blocksFree),
    );
    series(
      "gauge",
      "moe_edge_kv_cache_usage_perc",
      "Fraction of the KV pool holding rows (0-1).",
      m,
      per((s) => (s.kv.tokensCapacity ? s.kv.tokensUsed / s.kv.tokensCapacity : 0)),
    );

    // What vLLM has no name for: the pool and cache in bytes and tokens, requests cancellable now.
    series("gauge", "moe_edge_in_flight_requests", "Generate and embed requests in flight (cancellable).", [], () => [
      [{}, this.src.inFlight()],
    ]);
    series(
      "gauge",
      "moe_edge_kv_cache_tokens_used",
      "KV rows holding tokens.",
      m,
      per((s) => s.kv.tokensUsed),
    );
    series(
      "gauge",
      "moe_edge_kv_cache_tokens_capacity",
      "KV rows the pool can hold.",
      m,
      per((s) => s.kv.tokensCapacity),
    );
    series(
      "gauge",
      "moe_edge_kv_cache_bytes",
      "Preallocated KV bytes.",
      m,
      per((s) => s.kv.bytes),
    );
    series(
      "gauge",
      "moe_edge_prefix_cache_bytes",
      "Prefix cache bytes in use.",
      m,
      per((s) => s.prefix.bytes),
    );
    series(
      "gauge",
      "moe_edge_prefix_cache_blocks",
      "Prefix cache blocks.",
      m,
      per((s) => s.prefix.entries),
    );
    series(
      "counter",
      "moe_edge_prefix_cache_evictions_total",
      "Prefix cache LRU evictions.",
      m,
      per((s) => s.prefix.evictions),
    );
    const usage = (f: (u: UsageStats) => number) => (): Rows => {
      const u = this.src.usage();
      return u ? [[{}, f(u)]] : [];
    };
    series(
      "gauge",
      "moe_edge_usage_pending_records",
      "Usage records journaled and not yet acknowledged by the worker.",
      [],
      usage((u) => u.pending),
    );
    series(
      "gauge",
      "moe_edge_usage_journal_segments",
      "Usage journal segments on disk.",
      [],
      usage((u) => u.segments),
    );
  }
}

const finite = (v: number) => (Number.isFinite(v) ? v : 0);
