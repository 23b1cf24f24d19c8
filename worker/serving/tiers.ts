/**
 * Serving configuration: the TIERS var (JSON) parsed and validated once per isolate (a bad config is an
 * operator error: requests get a generic 500, the details go to the log), and the replica timeouts.
 * A tier's `backends` are the registry's live, ready replicas of its backend model when there are any
 * (serving/live-replicas.ts), else the static list in TIERS: the seed, for deployments without a registry.
 */
import { z } from "zod";
import { ApiError, internalError } from "../errors";
import type { Pricing } from "../billing/types";
import { HEADERS_TIMEOUT_MS } from "./backend";
import { liveBackends, liveSnapshot } from "./live-replicas";

const microEuros = z.number().int().nonnegative();

const TierSchema = z.object({
  backends: z.array(z.string().url()).min(1),
  backend_model: z.string().min(1),
  context_window: z.number().int().positive(),
  kind: z.enum(["chat", "embedding"]).default("chat"),
  price: z.object({ input: microEuros, cached_input: microEuros, output: microEuros }),
});

const TiersSchema = z.record(z.string().min(1), TierSchema).refine((t) => Object.keys(t).length > 0, "no tiers");

export interface Tier {
  /** Public model name, e.g. "mistral-small". */
  name: string;
  kind: "chat" | "embedding";
  /** Replica base URLs without a trailing slash. */
  backends: string[];
  backendModel: string;
  contextWindow: number;
  pricing: Pricing;
}

export type Tiers = ReadonlyMap<string, Tier>;

let cached: { raw: string; tiers: Tiers | null } | undefined;
let overlaid: { seed: Tiers; version: number; tiers: Tiers } | undefined;

/** Parses TIERS; throws an Error with the reason (never reaches a user). */
export function parseTiers(raw: string): Tiers {
  const parsed = TiersSchema.parse(JSON.parse(raw));
  const tiers = new Map<string, Tier>();
  for (const [name, t] of Object.entries(parsed)) {
    tiers.set(name, {
      name,
      kind: t.kind,
      backends: t.backends.map((b) => b.replace(/\/+$/, "")),
      backendModel: t.backend_model,
      contextWindow: t.context_window,
      pricing: { ...t.price },
    });
  }
  return tiers;
}

/** The isolate's tiers over the live replica set; rebuilt only when the var or the snapshot changes. */
export function getTiers(raw: string | undefined): Tiers {
  const seed = seedTiers(raw);
  const version = liveSnapshot()?.version ?? 0;
  if (overlaid?.seed !== seed || overlaid.version !== version) {
    const tiers = new Map<string, Tier>();
    for (const [name, t] of seed) tiers.set(name, { ...t, backends: liveBackends(t.backendModel) ?? t.backends });
    overlaid = { seed, version, tiers };
  }
  return overlaid.tiers;
}

/** The tiers exactly as TIERS declares them; re-parsed only when the raw var changes (tests swap it). */
export function seedTiers(raw: string | undefined): Tiers {
  if (cached?.raw !== (raw ?? "")) {
    let tiers: Tiers | null = null;
    try {
      tiers = parseTiers(raw ?? "");
    } catch (err) {
      console.error(
        JSON.stringify({
          level: "error",
          msg: "invalid TIERS config",
          error: err instanceof Error ? err.message : String(err),
        }),
      );
    }
    cached = { raw: raw ?? "", tiers };
  }
  if (!cached.tiers) throw internalError();
  return cached.tiers;
}

/** How long a replica may stay silent (serving/watchdog.ts); from the STALL_TIMEOUT_MS and FIRST_TOKEN_TIMEOUT_MS vars. */
export interface ReplicaTimeouts {
  /** Until /v1/generate's response headers (sent on admission): the shorter of 15 s and `stallMs`. */
  headersMs: number;
  /** Admission to the first event: queue wait plus the prefill of a long prompt on a CPU replica. */
  firstEventMs: number;
  /** The longest gap between two events once tokens flow. */
  stallMs: number;
}

export const DEFAULT_STALL_TIMEOUT_MS = 30_000;
export const DEFAULT_FIRST_TOKEN_TIMEOUT_MS = 120_000;

/** A positive integer of milliseconds, else the default (an operator typo must not disable the watchdog). */
function millis(raw: string | undefined, name: string, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (Number.isSafeInteger(n) && n > 0) return n;
  console.error(JSON.stringify({ level: "error", msg: `invalid ${name}, using ${fallback}`, value: raw.slice(0, 40) }));
  return fallback;
}

/** The replica silence bounds of this deployment. */
export function replicaTimeouts(env: { STALL_TIMEOUT_MS?: string; FIRST_TOKEN_TIMEOUT_MS?: string }): ReplicaTimeouts {
  const stallMs = millis(env.STALL_TIMEOUT_MS, "STALL_TIMEOUT_MS", DEFAULT_STALL_TIMEOUT_MS);
  return {
    headersMs: Math.min(HEADERS_TIMEOUT_MS, stallMs),
    firstEventMs: millis(env.FIRST_TOKEN_TIMEOUT_MS, "FIRST_TOKEN_TIMEOUT_MS", DEFAULT_FIRST_TOKEN_TIMEOUT_MS),
    stallMs,
  };
}

/** 404 in the OpenAI shape, identical for unknown and not-permitted models (no probing of tier names). */
export function modelNotFound(model: string): ApiError {
  return new ApiError(
    404,
    `The model '${model.slice(0, 100)}' does not exist or you do not have access to it.`,
    "not_found_error",
    "model_not_found",
    "model",
  );
}
