/**
 * The isolate's view of the replica registry (registry/replica-registry.ts), read cheaply per request.
 *
 * One registry call per isolate per LIVE_TTL_MS at most: a request that finds the snapshot older than
 * that starts one shared refresh and, if the snapshot is still younger than LIVE_MAX_STALE_MS, goes on
 * with it (stale-while-revalidate, the refresh finishing under waitUntil); an older or missing snapshot
 * is awaited, bounded by REFRESH_TIMEOUT_MS. A failed refresh keeps the last snapshot. So a replica's
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
let refreshing: Promise<void> | null = null;
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

function refresh(env: Env): Promise<void> {
  const stub = registryStub(env);
  if (!stub) return Promise.resolve();
  refreshing ??= Promise.race([
    stub.list().then((list) => setLiveSnapshot(list as ReplicaRecord[])),
    new Promise<void>((_, reject) => setTimeout(() => reject(new Error("registry timeout")), REFRESH_TIMEOUT_MS)),
  ])
    .catch((err: unknown) =>
      console.error(JSON.stringify({ level: "error", msg: "replica registry unreadable", error: String(err) })),
    )
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

/** Makes the snapshot fresh enough for routing (see the module doc). */
export async function ensureLiveReplicas(
  env: Env,
  waitUntil: (p: Promise<unknown>) => void,
  now = Date.now(),
): Promise<void> {
  if (snapshot && now - snapshot.at < LIVE_TTL_MS) return;
  const p = refresh(env);
  if (snapshot && now - snapshot.at < LIVE_MAX_STALE_MS) waitUntil(p);
  else await p;
}

/** Live, ready replicas serving `backendModel`, in URL order; null when the registry has none (use the seed). */
export function liveBackends(backendModel: string): string[] | null {
  if (!snapshot) return null;
  const urls = snapshot.replicas
    .filter((r) => r.state === "ready" && r.models.includes(backendModel))
    .map((r) => r.url);
  return urls.length > 0 ? urls : null;
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
