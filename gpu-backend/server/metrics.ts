/** Prometheus text exposition for the engines (hand-written: a handful of counters and gauges). */
import type { Engine } from "../engine/engine";

export interface HttpCounters {
  requests: Map<string, number>;
  /** Generate and embed requests that POST /v1/cancel can reach now. */
  inFlight: () => number;
}

/** The usage witness's gauges (gpu-backend/usage/). */
export interface UsageStats {
  pending: number;
  segments: number;
}

export function renderMetrics(engines: Engine[], http: HttpCounters, usage?: UsageStats): string {
  const out: string[] = [];
  const metric = (name: string, type: "counter" | "gauge", help: string, rows: Array<[string, number]>) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of rows) out.push(`${name}${labels} ${Number.isFinite(v) ? v : 0}`);
  };
  const per = (f: (e: Engine) => number): Array<[string, number]> => engines.map((e) => [`{model="${e.name}"}`, f(e)]);

  metric("backend_http_requests_total", "counter", "HTTP requests by route and status.",
    [...http.requests].map(([k, v]) => {
      const [route, status] = k.split(" ");
      return [`{route="${route}",status="${status}"}`, v];
    }));
  metric("backend_in_flight_requests", "gauge", "Generate and embed requests in flight (cancellable).", [["", http.inFlight()]]);
  metric("backend_generate_requests_total", "counter", "Finished generations by finish reason.",
    engines.flatMap((e) => Object.entries(e.metrics.requests).map(([r, v]): [string, number] => [`{model="${e.name}",finish_reason="${r}"}`, v])));
  metric("backend_prompt_tokens_total", "counter", "Prompt tokens of finished generations.", per((e) => e.metrics.promptTokens));
  metric("backend_cached_tokens_total", "counter", "Prompt tokens served from the prefix cache.", per((e) => e.metrics.cachedTokens));
  metric("backend_completion_tokens_total", "counter", "Generated tokens.", per((e) => e.metrics.completionTokens));
  metric("backend_queue_depth", "gauge", "Requests waiting for a KV slot.", per((e) => e.queueDepth));
  metric("backend_running_sequences", "gauge", "Sequences holding a KV slot.", per((e) => e.runningCount));
  metric("backend_batch_size", "gauge", "Sequences in the last step.", per((e) => e.metrics.lastBatch));
  metric("backend_decode_batch_size_avg", "gauge", "Mean decode batch size.", per((e) => e.metrics.decodeBatchSum / Math.max(1, e.metrics.steps.decode)));
  metric("backend_steps_total", "counter", "Engine steps by kind.",
    engines.flatMap((e) => (["prefill", "decode"] as const).map((k): [string, number] => [`{model="${e.name}",kind="${k}"}`, e.metrics.steps[k]])));
  metric("backend_step_seconds_total", "counter", "Time spent in engine steps by kind (divide by steps_total for latency).",
    engines.flatMap((e) => (["prefill", "decode"] as const).map((k): [string, number] => [`{model="${e.name}",kind="${k}"}`, e.metrics.stepSeconds[k]])));
  metric("backend_kv_slots_used", "gauge", "KV slots in use.", per((e) => e.pool.batchSize));
  metric("backend_kv_tokens_used", "gauge", "KV rows holding tokens.", per((e) => e.pool.usedTokens));
  metric("backend_kv_tokens_capacity", "gauge", "KV rows the pool can hold.", per((e) => e.pool.capacityTokens));
  metric("backend_kv_bytes", "gauge", "Preallocated KV bytes.", per((e) => e.pool.bytes));
  metric("backend_prefix_cache_bytes", "gauge", "Prefix cache bytes in use.", per((e) => e.prefix.snapshot().bytes));
  metric("backend_prefix_cache_blocks", "gauge", "Prefix cache blocks.", per((e) => e.prefix.snapshot().entries));
  metric("backend_prefix_cache_evictions_total", "counter", "Prefix cache LRU evictions.", per((e) => e.prefix.snapshot().evictions));
  metric("backend_prefix_cache_hit_rate", "gauge", "Prompt tokens found in the prefix cache / prompt tokens looked up.",
    per((e) => {
      const s = e.prefix.snapshot();
      return s.queriedTokens ? s.hitTokens / s.queriedTokens : 0;
    }));
  if (usage) {
    metric("backend_usage_pending_records", "gauge", "Usage records journaled and not yet acknowledged by the worker.", [["", usage.pending]]);
    metric("backend_usage_journal_segments", "gauge", "Usage journal segments on disk.", [["", usage.segments]]);
  }
  return out.join("\n") + "\n";
}
