/**
 * Failed-auth throttle: a token bucket per client, keyed by CF-Connecting-IP, in isolate memory, and
 * one set of buckets per credential (API keys, the admin token, the usage token), so a client guessing
 * API keys never locks the operator out of the admin API, nor the backends out of /internal/usage. Each failed attempt takes a token; a client with none left gets
 * 429 before its credential is even looked at (no SHA-256, no D1 read).
 *
 * Why per isolate and not a Durable Object: the throttle guards cost (D1 reads, logs), not secrecy
 * (keys carry 256 random bits; admin tokens at least 32 characters), so a global count is not worth a
 * DO round trip on every failed request. An attacker spread over N isolates gets N buckets, still
 * ~FAILED_AUTH_REFILL_PER_S guesses a second each.
 */
import { ApiError } from "../errors";

export const FAILED_AUTH_BURST = 60;
export const FAILED_AUTH_REFILL_PER_S = 1;
const MAX_CLIENTS = 10_000;

interface Bucket {
  tokens: number;
  at: number;
}

export class FailedAuthThrottle {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly burst = FAILED_AUTH_BURST,
    private readonly refillPerS = FAILED_AUTH_REFILL_PER_S,
    // Read through Date.now at each call (not a saved reference), so a test can hold the clock still.
    private readonly clock: () => number = () => Date.now(),
  ) {}

  private bucket(client: string): Bucket {
    const now = this.clock();
    const b = this.buckets.get(client) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.refillPerS);
    b.at = now;
    return b;
  }

  /** Seconds until this client may try again, or 0 when it may now. */
  retryAfterS(client: string): number {
    const b = this.bucket(client);
    return b.tokens >= 1 ? 0 : Math.ceil((1 - b.tokens) / this.refillPerS);
  }

  fail(client: string): void {
    const b = this.bucket(client);
    b.tokens = Math.max(0, b.tokens - 1);
    // Oldest first out: bounded memory whatever the number of source addresses.
    this.buckets.delete(client);
    if (this.buckets.size >= MAX_CLIENTS) this.buckets.delete(this.buckets.keys().next().value as string);
    this.buckets.set(client, b);
  }
}

/** One throttle per credential: failures against one never cost attempts at another. */
export const failedAuth = {
  apiKey: new FailedAuthThrottle(),
  admin: new FailedAuthThrottle(),
  usage: new FailedAuthThrottle(),
} as const;
export type Credential = keyof typeof failedAuth;

export const clientOf = (header: string | undefined) => header?.trim() || "unknown";

export const tooManyFailures = (retryAfterS: number) =>
  new ApiError(
    429,
    "Too many failed authentication attempts. Please retry later.",
    "rate_limit_error",
    "auth_throttled",
    null,
    {
      "retry-after": String(retryAfterS),
    },
  );

/**
 * Runs `verify` unless the client is throttled for this credential; counts its failure (an HTTPException
 * or ApiError 401) in that credential's bucket only.
 */
export async function throttled<T>(credential: Credential, client: string, verify: () => Promise<T>): Promise<T> {
  const bucket = failedAuth[credential];
  const wait = bucket.retryAfterS(client);
  if (wait > 0) throw tooManyFailures(wait);
  try {
    return await verify();
  } catch (err) {
    const status = (err as { status?: unknown }).status;
    if (status === 401) bucket.fail(client);
    throw err;
  }
}
