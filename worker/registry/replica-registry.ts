/**
 * The live replica set, one Durable Object per deployment (`idFromName("replicas")`). Backends upsert
 * themselves with every heartbeat (contract/registry.ts); a replica silent for `expire_ms` is gone from
 * every answer and deleted lazily. State is kept in memory and mirrored to the object's storage, so an
 * eviction or a restart of the object loses nothing; a reset (storage wiped) heals within one heartbeat,
 * because every heartbeat carries the whole report.
 *
 * Authorization and the URL allowlist are checked by the route (routes/registry.ts) before any call here.
 */
import { DurableObject } from "cloudflare:workers";
import {
  DEFAULT_HEARTBEAT_MS,
  MISSED_HEARTBEATS,
  type HeartbeatAck,
  type ReplicaReport,
} from "../../contract/registry";
import type { Env } from "../env";

export interface ReplicaRecord extends ReplicaReport {
  id: string;
  /** Epoch ms of the first heartbeat of this registration. */
  registered_at: number;
  /** Epoch ms of the last heartbeat. */
  last_seen: number;
}

export const EXPIRE_MS = DEFAULT_HEARTBEAT_MS * MISSED_HEARTBEATS;
const PREFIX = "replica:";

/** A stable short id for a URL (the same URL keeps its id across restarts of the backend). */
export async function replicaId(url: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(url));
  return `rep_${[...new Uint8Array(d).slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export class ReplicaRegistry extends DurableObject<Env> {
  private readonly replicas = new Map<string, ReplicaRecord>();
  /** Deregistered process instances -> until when their late heartbeats are ignored. */
  private readonly gone = new Map<string, number>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      const stored = await ctx.storage.list<ReplicaRecord>({ prefix: PREFIX });
      for (const r of stored.values()) this.replicas.set(r.url, r);
    });
  }

  /** Join or refresh. */
  async heartbeat(report: ReplicaReport, now = Date.now()): Promise<HeartbeatAck> {
    for (const [instance, until] of this.gone) if (until < now) this.gone.delete(instance);
    // A heartbeat that was in flight when its process deregistered: do not resurrect the replica.
    if (this.gone.has(report.instance))
      return { id: await replicaId(report.url), heartbeat_ms: DEFAULT_HEARTBEAT_MS, expire_ms: EXPIRE_MS };
    const prev = this.live(now).get(report.url);
    const id = prev?.id ?? (await replicaId(report.url));
    const same = prev?.instance === report.instance;
    const rec: ReplicaRecord = {
      ...report,
      // Draining is one-way within a process: a heartbeat sent before SIGTERM but arriving after the
      // draining one must not put the replica back into rotation.
      state: same && prev?.state === "draining" ? "draining" : report.state,
      id,
      registered_at: same && prev ? prev.registered_at : now,
      last_seen: now,
    };
    this.replicas.set(rec.url, rec);
    await this.ctx.storage.put(PREFIX + rec.url, rec);
    return { id, heartbeat_ms: DEFAULT_HEARTBEAT_MS, expire_ms: EXPIRE_MS };
  }

  async deregister(url: string, instance: string, now = Date.now()): Promise<boolean> {
    this.gone.set(instance, now + EXPIRE_MS);
    const rec = this.replicas.get(url);
    // Only the process that registered the URL removes it (a stale deregister must not drop its successor).
    if (!rec || rec.instance !== instance) return false;
    const had = this.replicas.delete(url);
    await this.ctx.storage.delete(PREFIX + url);
    return had;
  }

  /** The live replicas, in URL order. */
  async list(now = Date.now()): Promise<ReplicaRecord[]> {
    return [...this.live(now).values()].sort((a, b) => (a.url < b.url ? -1 : 1));
  }

  /** Forgets everything (the soak's registry restart; tests). */
  async reset(): Promise<void> {
    this.replicas.clear();
    this.gone.clear();
    await this.ctx.storage.deleteAll();
  }

  /** Drops the expired (memory and storage), returns the rest. */
  private live(now: number): Map<string, ReplicaRecord> {
    for (const [url, r] of this.replicas) {
      if (r.last_seen + EXPIRE_MS < now) {
        this.replicas.delete(url);
        this.ctx.storage.delete(PREFIX + url).catch(() => {});
      }
    }
    return this.replicas;
  }
}

/** The deployment's registry, or null where the binding is absent (static TIERS only). */
export function registryStub(env: Env): DurableObjectStub<ReplicaRegistry> | null {
  const ns = (env as { REPLICA_REGISTRY?: DurableObjectNamespace<ReplicaRegistry> }).REPLICA_REGISTRY;
  return ns ? ns.get(ns.idFromName("replicas")) : null;
}
