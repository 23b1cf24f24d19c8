/**
 * The isolate's view of the replica registry (registry/replica-registry.ts), read cheaply per request.
 *
 * One background registry read per isolate per LIVE_TTL_MS at most: a request that finds the snapshot
 * older than that, but younger than LIVE_MAX_STALE_MS, goes on with it and starts a refresh under
 * waitUntil (stale-while-revalidate; one at a time); a request that finds it older or missing reads the
 * registry itself, bounded by REFRESH_TIMEOUT_MS. A failed read keeps the last snapshot. So a replica's
 * change of state (join, draining, gone) reaches routing within about LIVE_TTL_MS plus one heartbeat;
 * the replica's own 503 while it drains (a retryable failure: the next replica) covers that window.
 */
import type { ReplicaRecord } from "../registry/replica-registry";
import { registryStub } from "../registry/replica-registry";
import type { Env } from "../env";
import type { Tier } from "../config/tiers";

export const LIVE_TTL_MS = 2_000;
export const LIVE_MAX_STALE_MS = 10_000;
const REFRESH_TIMEOUT_MS = 1_000;

export interface LiveSnapshot {
  /** Epoch ms of the fetch. */
  at: number;
  /** Bumped on every fetch: memo key for views derived from it. */
  version: number;
  replicas: readonly ReplicaRecord[];
  byUrl: ReadonlyMap<string, ReplicaRecord>;
}

let snapshot: LiveSnapshot | null = null;
let refreshStartedAt = 0;
let version = 0;

/** The isolate's snapshot, or null before the first fetch (or without a registry). */
export function liveSnapshot(): LiveSnapshot | null {
  return snapshot;
}

/** Installs a snapshot (the refresh; tests). */
export function setLiveSnapshot(replicas: readonly ReplicaRecord[] | null, now = Date.now()): void {
  snapshot =
    replicas === null
      ? null
      : { at: now, version: ++version, replicas, byUrl: new Map(replicas.map((r) => [r.url, r])) };
}

/**
 * One registry read into the snapshot. Its promise is never shared between requests: workerd cancels the
 * continuation of a request that awaits a promise another request created once that request has ended, so
 * a shared in-flight refresh could leave a request hanging. Requests that must wait read for themselves;
 * `refreshStartedAt` only keeps the background refreshes to one per interval.
 */
async function refresh(env: Env, now: number): Promise<void> {
  const stub = registryStub(env);
  if (!stub) return;
  refreshStartedAt = now;
  let timer: ReturnType<typeof setTimeout> | null = null;
  try {
    const list = await Promise.race([
      stub.list(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("registry timeout")), REFRESH_TIMEOUT_MS);
      }),
    ]);
    setLiveSnapshot(list as ReplicaRecord[]);
  } catch (err) {
    console.error(JSON.stringify({ level: "error", msg: "replica registry unreadable", error: String(err) }));
  } finally {
    if (timer !== null) clearTimeout(timer);
  }
}

/** Makes the snapshot fresh enough for routing (see the module doc). */
export async function ensureLiveReplicas(
  env: Env,
  waitUntil: (p: Promise<unknown>) => void,
  now = Date.now(),
): Promise<void> {
  if (snapshot && now - snapshot.at < LIVE_TTL_MS) return;
  if (snapshot && now - snapshot.at < LIVE_MAX_STALE_MS) {
    if (now - refreshStartedAt >= REFRESH_TIMEOUT_MS) waitUntil(refresh(env, now));
    return;
  }
  await refresh(env, now);
}

/**
 * The registered replicas serving `backendModel`, in URL order: the ready ones and the draining ones (which
 * the router tries last: a snapshot can be a few seconds old, and the replica it calls "draining" may
 * already be back as a new process, the only one left to fail over to). Null when none is ready: the seed.
 */
export function liveBackends(backendModel: string): string[] | null {
  if (!snapshot) return null;
  const serving = snapshot.replicas.filter((r) => r.models.includes(backendModel));
  return serving.some((r) => r.state === "ready") ? serving.map((r) => r.url) : null;
}

/** True when the registry last listed `url` as draining. */
export function isDraining(url: string): boolean {
  return snapshot?.byUrl.get(url)?.state === "draining";
}

/**
 * Where a tier's requests may go: the registry's live, ready replicas of its backend model when there are
 * any, else the static `backends` of TIERS (the seed, for deployments without a registry).
 */
export function replicasOf(tier: Pick<Tier, "backendModel" | "backends">): string[] {
  return liveBackends(tier.backendModel) ?? tier.backends;
}

/** The load a replica last reported (in flight + waiting), or 0 when it is not in the registry. */
export function reportedLoad(url: string): number {
  const r = snapshot?.byUrl.get(url);
  return r ? r.in_flight + r.queue_depth : 0;
}
