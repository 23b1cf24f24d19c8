/**
 * The replica silence bounds of this deployment (serving/watchdog.ts), from the STALL_TIMEOUT_MS and
 * FIRST_TOKEN_TIMEOUT_MS vars.
 */
import { HEADERS_TIMEOUT_MS } from "./backend";

/** How long a replica may stay silent. */
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
