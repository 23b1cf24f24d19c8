/**
 * Token buckets for requests/min and tokens/min (pure functions; the KeyLimiter DO persists them).
 * A bucket holds up to `capacity` and refills capacity per 60 s continuously, so a key can burst
 * its whole per-minute allowance and then proceeds at the steady rate. Levels are floats: limits
 * are not money, and float drift only ever costs a fraction of one request or token.
 */
export const WINDOW_MS = 60_000;

export interface Bucket {
  level: number;
  updatedMs: number;
}

export function refill(b: Bucket | undefined, capacity: number, now: number): Bucket {
  if (!b) return { level: capacity, updatedMs: now };
  const elapsed = Math.max(0, now - b.updatedMs);
  return { level: Math.min(capacity, b.level + (elapsed * capacity) / WINDOW_MS), updatedMs: now };
}

/** Milliseconds until the bucket holds `need` (0 if it already does; Infinity if it never can). */
export function waitMs(b: Bucket, capacity: number, need: number): number {
  if (b.level >= need) return 0;
  if (need > capacity || capacity <= 0) return Infinity;
  return Math.ceil(((need - b.level) * WINDOW_MS) / capacity);
}

export function resetMs(b: Bucket, capacity: number): number {
  return capacity <= 0 ? 0 : Math.ceil(((capacity - b.level) * WINDOW_MS) / capacity);
}

/** Go-style duration as OpenAI's x-ratelimit-reset-* headers use: "120ms", "1.5s", "6m0s". */
export function formatDuration(ms: number): string {
  const m = Math.max(0, Math.ceil(ms));
  if (m < 1000) return `${m}ms`;
  if (m < 60_000) return `${Number((m / 1000).toFixed(3))}s`;
  const min = Math.floor(m / 60_000);
  return `${min}m${Number(((m - min * 60_000) / 1000).toFixed(3))}s`;
}

export interface RateSnapshot {
  rpm: number;
  tpm: number;
  requests: Bucket;
  tokens: Bucket;
}

export function rateHeaders(s: RateSnapshot): Record<string, string> {
  return {
    "x-ratelimit-limit-requests": String(s.rpm),
    "x-ratelimit-remaining-requests": String(Math.max(0, Math.floor(s.requests.level))),
    "x-ratelimit-reset-requests": formatDuration(resetMs(s.requests, s.rpm)),
    "x-ratelimit-limit-tokens": String(s.tpm),
    "x-ratelimit-remaining-tokens": String(Math.max(0, Math.floor(s.tokens.level))),
    "x-ratelimit-reset-tokens": formatDuration(resetMs(s.tokens, s.tpm)),
  };
}

/** Retry-After (whole seconds, at least 1) and retry-after-ms for a 429. */
export function retryHeaders(ms: number): Record<string, string> {
  const m = Math.max(1, Math.ceil(ms));
  return { "retry-after": String(Math.max(1, Math.ceil(m / 1000))), "retry-after-ms": String(m) };
}
