/**
 * Prefix-aware replica choice (vLLM/SGLang prior art, DESIGN §7).
 *
 * The prompt's first full blocks, chained into a hash salted per account, pick a replica by
 * rendezvous hashing: requests sharing a prefix (same account, same system prompt / conversation
 * start) land on the replica whose prefix cache already holds it, and adding/removing a replica only
 * moves the keys that hashed to it. Two isolate-local signals override the choice:
 *  - health: a circuit breaker opens after consecutive failures and skips the replica for a cooldown,
 *    jittered so the isolates that saw the same outage do not all come back to the replica at one instant
 *    (after it, one more failure reopens it: a half-open probe);
 *  - load: SGLang's rule — when in-flight counts are imbalanced (max - min > abs and max > rel * min),
 *    the least-loaded replica goes first.
 */
import { hashIds, hashString } from "./hash";

/** Tokens per prefix block; the backend's prefix cache uses the same size. */
export const BLOCK_SIZE = 16;
/** How many leading full blocks decide the replica (64 tokens: a system prompt or first turn). */
export const ROUTING_BLOCKS = 4;

/** Hash of the salted prompt prefix that decides the replica. */
export function routingKey(ids: readonly number[], salt: string): number {
  let h = hashString(salt, 0x5eed);
  const full = Math.min(Math.floor(ids.length / BLOCK_SIZE), ROUTING_BLOCKS);
  // No full block: the prompt is too short to benefit from a cache, so spread it by its content.
  if (full === 0) return hashIds(h, ids);
  for (let b = 0; b < full; b++) h = hashIds(h, ids, b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE);
  return h;
}

export interface RouterOptions {
  /** Load imbalance thresholds (SGLang defaults: 32 / 1.1; ours fit small replica pools). */
  balanceAbsThreshold: number;
  balanceRelThreshold: number;
  /** Consecutive failures that open the circuit, and how long it stays open: cooldownMs ± cooldownJitter × cooldownMs. */
  failureThreshold: number;
  cooldownMs: number;
  cooldownJitter: number;
  now: () => number;
  /** Uniform in [0, 1); tests seed it. */
  random: () => number;
}

interface ReplicaState {
  inFlight: number;
  consecutiveFailures: number;
  openUntil: number;
}

export class ReplicaRouter {
  private readonly state = new Map<string, ReplicaState>();
  private readonly opts: RouterOptions;

  constructor(opts: Partial<RouterOptions> = {}) {
    this.opts = {
      balanceAbsThreshold: 4,
      balanceRelThreshold: 1.5,
      failureThreshold: 3,
      cooldownMs: 5_000,
      cooldownJitter: 0.5,
      now: Date.now,
      random: Math.random,
      ...opts,
    };
  }

  private get(url: string): ReplicaState {
    let s = this.state.get(url);
    if (!s) {
      s = { inFlight: 0, consecutiveFailures: 0, openUntil: 0 };
      this.state.set(url, s);
    }
    return s;
  }

  isHealthy(url: string): boolean {
    return this.get(url).openUntil <= this.opts.now();
  }

  inFlight(url: string): number {
    return this.get(url).inFlight;
  }

  /** Replicas in the order to try: preferred first, open circuits last (still tried if all are down). */
  rank(backends: readonly string[], key: number): string[] {
    const seed = (key >>> 0) ^ Math.floor(key / 0x100000000);
    const byScore = [...backends].sort((a, b) => hashString(b, seed) - hashString(a, seed) || (a < b ? -1 : 1));
    const healthy = byScore.filter((u) => this.isHealthy(u));
    const down = byScore.filter((u) => !this.isHealthy(u));
    if (healthy.length > 1) {
      const loads = healthy.map((u) => this.get(u).inFlight);
      const max = Math.max(...loads);
      const min = Math.min(...loads);
      if (max - min > this.opts.balanceAbsThreshold && max > this.opts.balanceRelThreshold * min) {
        const least = healthy[loads.indexOf(min)];
        healthy.splice(healthy.indexOf(least), 1);
        healthy.unshift(least);
      }
    }
    return [...healthy, ...down];
  }

  /** Counts a request in flight on `url`; call the returned function exactly once when it ends. */
  acquire(url: string): () => void {
    const s = this.get(url);
    s.inFlight++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      s.inFlight--;
    };
  }

  recordSuccess(url: string): void {
    const s = this.get(url);
    s.consecutiveFailures = 0;
    s.openUntil = 0;
  }

  recordFailure(url: string): void {
    const s = this.get(url);
    s.consecutiveFailures++;
    if (s.consecutiveFailures < this.opts.failureThreshold) return;
    const { cooldownMs, cooldownJitter } = this.opts;
    s.openUntil = this.opts.now() + Math.round(cooldownMs * (1 + cooldownJitter * (2 * this.opts.random() - 1)));
  }
}

/** The isolate's router: health and load are per isolate (no coordination across isolates). */
export const replicaRouter = new ReplicaRouter();
