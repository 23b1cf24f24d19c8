/**
 * One engine's state in a single read (vLLM's make_stats): the server's /metrics asks for this snapshot
 * and never reads the scheduler, KV pool or prefix cache itself.
 */
import type { FinishReason } from "../../contract/wire";
import type { KvPool } from "./kv-cache";
import type { PrefixCache, PrefixCacheStats } from "./prefix-cache";

/** The engine's running counters (Engine.metrics; reset per bench run). */
export interface EngineMetrics {
  requests: Record<FinishReason, number>;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  steps: { prefill: number; decode: number };
  stepSeconds: { prefill: number; decode: number };
  /** Tokens fed by decode and chunk steps (chunk steps count as decode steps). */
  decodeBatchSum: number;
  lastBatch: number;
  /** Completion tokens appended without sampling (jump-forward), and the batch-1 chunk steps that fed them. */
  forcedTokens: number;
  chunkSteps: number;
}

export function freshMetrics(): EngineMetrics {
  return {
    requests: { stop: 0, length: 0, model_length: 0, cancelled: 0, error: 0 },
    promptTokens: 0,
    cachedTokens: 0,
    completionTokens: 0,
    steps: { prefill: 0, decode: 0 },
    stepSeconds: { prefill: 0, decode: 0 },
    decodeBatchSum: 0,
    lastBatch: 0,
    forcedTokens: 0,
    chunkSteps: 0,
  };
}

export interface EngineStats {
  model: string;
  /** Requests queued for a KV slot / sequences holding one. */
  waiting: number;
  running: number;
  kv: {
    slotsUsed: number;
    tokensUsed: number;
    tokensCapacity: number;
    bytes: number;
    /** The pool in prefix-cache blocks (--block-size tokens): blocks holding a written row, and the rest. */
    blockSize: number;
    blocksUsed: number;
    blocksFree: number;
  };
  prefix: PrefixCacheStats;
  /** Cumulative since warm-up (Engine.resetMetrics). */
  counters: EngineMetrics;
  /**
   * Always 0: admission reserves a slot's whole length (prompt + max_tokens, kv-cache.ts), so a running
   * sequence is never evicted to make room. Exposed so dashboards built for vLLM keep their panel.
   */
  preemptions: number;
}

interface Parts {
  model: string;
  waiting: number;
  running: number;
  pool: KvPool;
  prefix: PrefixCache;
  metrics: EngineMetrics;
}

export function makeStats(p: Parts): EngineStats {
  const bs = p.prefix.blockSize;
  let blocksUsed = 0;
  for (const seq of p.pool.slots) blocksUsed += Math.ceil(p.pool.length(seq) / bs);
  const blocksTotal = Math.floor(p.pool.capacityTokens / bs);
  const m = p.metrics;
  return {
    model: p.model,
    waiting: p.waiting,
    running: p.running,
    kv: {
      slotsUsed: p.pool.batchSize,
      tokensUsed: p.pool.usedTokens,
      tokensCapacity: p.pool.capacityTokens,
      bytes: p.pool.bytes,
      blockSize: bs,
      blocksUsed,
      blocksFree: Math.max(0, blocksTotal - blocksUsed),
    },
    prefix: p.prefix.snapshot(),
    // A copy: the snapshot must not move while /metrics renders it.
    counters: { ...m, requests: { ...m.requests }, steps: { ...m.steps }, stepSeconds: { ...m.stepSeconds } },
    preemptions: 0,
  };
}
