/**
 * Prefix-aware replica choice (vLLM/SGLang prior art, DESIGN §7).
 *
 * The prompt's first full blocks, chained into a hash salted per account, pick a replica by
 * rendezvous hashing: requests sharing a prefix (same account, same system prompt / conversation
 * start) land on the replica whose prefix cache already holds it, and adding/removing a replica only
 * moves the keys that hashed to it. A replica the registry lists as draining goes last but one (before open
 * circuits): it takes new work only when every ready replica failed. Two isolate-local signals override the choice:
 *  - health: a circuit breaker opens after consecutive failures and skips the replica for a cooldown,
 *    jittered so the isolates that saw the same outage do not all come back to the replica at one instant
 *    (after it, one more failure reopens it: a half-open probe);
 *  - load: bounded-load consistent hashing (Mirrokni, Thorup and Zadimoghaddam, as in HAProxy's
 *    `hash-balance-factor`): a replica is hot when its load exceeds max(abs, rel × mean load, counting this
 *    request); hot replicas move behind the others, so a key stays on its cache-warm replica until that one
 *    runs hot, then spills to the next replica in its own rendezvous order (which keeps the spill sticky too).
 *    A replica's load is the larger of this isolate's in-flight count (fresh, one isolate) and what the
 *    replica last told the registry, in flight + queue depth (every isolate, up to a few seconds old).
 */
import { hashIds, hashString } from "./hash";
import { isDraining, reportedLoad } from "./live-replicas";

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
  /** Bounded load: a replica is hot above max(abs, rel × mean load). */
  balanceAbsThreshold: number;
  balanceRelThreshold: number;
  /** Consecutive failures that open the circuit, and how long it stays open: cooldownMs ± cooldownJitter × cooldownMs. */
  failureThreshold: number;
  cooldownMs: number;
  cooldownJitter: number;
  now: () => number;
  /** Uniform in [0, 1); tests seed it. */
  random: () => number;
  /** The load a replica reported to the registry (0 if unknown). */
  reported: (url: string) => number;
  /** Whether the registry lists the replica as draining. */
  draining: (url: string) => boolean;
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
      reported: reportedLoad,
      draining: isDraining,
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

  /** This isolate's in-flight count or the replica's reported load, whichever is larger. */
  load(url: string): number {
    return Math.max(this.get(url).inFlight, this.opts.reported(url));
  }

  /** Replicas in the order to try: preferred first, open circuits last (still tried if all are down). */
  rank(backends: readonly string[], key: number): string[] {
    const seed = (key >>> 0) ^ Math.floor(key / 0x100000000);
    const byScore = [...backends].sort((a, b) => hashString(b, seed) - hashString(a, seed) || (a < b ? -1 : 1));
    const draining = byScore.filter((u) => this.isHealthy(u) && this.opts.draining(u));
    const healthy = byScore.filter((u) => this.isHealthy(u) && !this.opts.draining(u));
    const down = [...draining, ...byScore.filter((u) => !this.isHealthy(u))];
    if (healthy.length > 1) {
      const loads = new Map(healthy.map((u) => [u, this.load(u)]));
      let total = 0;
      for (const l of loads.values()) total += l;
      const cap = Math.max(
        this.opts.balanceAbsThreshold,
        (this.opts.balanceRelThreshold * (total + 1)) / healthy.length,
      );
      const cool = healthy.filter((u) => loads.get(u)! <= cap);
      // All hot: plain rendezvous order (spreading more would only lose the caches).
      if (cool.length > 0 && cool.length < healthy.length)
        return [...cool, ...healthy.filter((u) => loads.get(u)! > cap), ...down];
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
