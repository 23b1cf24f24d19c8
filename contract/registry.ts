/**
 * The replica registry's wire shapes: a backend started with `--register <worker URL>` joins the worker's
 * live replica set and keeps its place with heartbeats (worker/registry/). Both sides import this leaf.
 *
 *   POST {worker}/internal/registry/heartbeat    ReplicaReport -> HeartbeatAck   (join = the first heartbeat)
 *   POST {worker}/internal/registry/deregister   {url, instance} -> {removed}
 *
 * Authorization: `Bearer <REGISTRY_TOKEN>`, a secret only backends and the worker hold. Every heartbeat
 * carries the whole report (an upsert), so a registry that lost its state is whole again one interval later.
 */
import { z } from "zod";

export const REGISTRY_HEARTBEAT_PATH = "/internal/registry/heartbeat";
export const REGISTRY_DEREGISTER_PATH = "/internal/registry/deregister";

/** Shortest REGISTRY_TOKEN the worker accepts; a shorter one leaves the registry routes a 404. */
export const MIN_REGISTRY_TOKEN_LENGTH = 32;

/** The default interval the registry asks for, and how many intervals a replica may miss before it expires. */
export const DEFAULT_HEARTBEAT_MS = 2_000;
export const MISSED_HEARTBEATS = 4;

const count = z.number().int().min(0).max(1_000_000_000);

/** A replica's base URL: http(s), no credentials, no query or fragment; stored without a trailing slash. */
export const ReplicaUrlSchema = z
  .string()
  .max(300)
  .refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === "http:" || u.protocol === "https:") && !u.username && !u.password && !u.search && !u.hash;
    } catch {
      return false;
    }
  }, "must be an http(s) URL without credentials, query or fragment")
  .transform((s) => s.replace(/\/+$/, ""));

export const ReplicaStateSchema = z.enum(["ready", "draining"]);
export type ReplicaState = z.infer<typeof ReplicaStateSchema>;

/** What a backend says about itself on every heartbeat. */
export const ReplicaReportSchema = z.strictObject({
  url: ReplicaUrlSchema,
  /** Random per process start: tells a restart at the same URL from a late heartbeat of the old process. */
  instance: z.string().min(8).max(64),
  /** Backend model names it serves (a tier's backend_model). */
  models: z.array(z.string().min(1).max(100)).min(1).max(64),
  /** Build version (package version + git commit, or an operator's tag). */
  version: z.string().min(1).max(100),
  state: ReplicaStateSchema,
  /** Sequences the replica can run at once (its engines' max batch, summed). */
  slots: count,
  /** Requests it runs now (holding a KV slot or streaming). */
  in_flight: count,
  /** Requests waiting for a KV slot: the autoscaling signal. */
  queue_depth: count,
  kv_free_blocks: count,
  /** Requests completed since this process registered. */
  served: count,
});
export type ReplicaReport = z.infer<typeof ReplicaReportSchema>;

export interface HeartbeatAck {
  /** Stable id of this URL in the registry. */
  id: string;
  /** Send the next heartbeat within this many ms. */
  heartbeat_ms: number;
  /** The registry forgets a replica silent for this long. */
  expire_ms: number;
}

export const DeregisterSchema = z.strictObject({ url: ReplicaUrlSchema, instance: z.string().min(8).max(64) });
export type Deregister = z.infer<typeof DeregisterSchema>;
