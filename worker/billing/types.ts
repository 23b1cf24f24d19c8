/**
 * The money path's interface to the request path. Route handlers call `admit` before touching a
 * backend and `settle` exactly once afterwards (whatever happened), with the tokens actually produced.
 */
export interface Account {
  keyId: string;
  name: string;
  /** Public model names this key may use, e.g. ["mistral-tiny", "mistral-embed"]. */
  tiers: string[];
  /** Per-tier requests/min and tokens/min. */
  rpm: number;
  tpm: number;
  monthlyBudgetMicros: number;
  /** Per-account salt for prefix-cache hashing (never the key itself). */
  cacheSalt: string;
}

export interface Pricing {
  /** Integer micro-euros per million tokens. */
  input: number;
  cached_input: number;
  output: number;
}

export interface AdmitRequest {
  requestId: string;
  model: string;
  pricing: Pricing;
  promptTokens: number;
  /** Counted against TPM at admission. */
  maxCompletionTokens: number;
  /**
   * Completion tokens whose cost the budget reserves now (default: maxCompletionTokens). Chat reserves
   * its first slice here and the rest as tokens stream (billing/slices.ts).
   */
  budgetCompletionTokens?: number;
}

export interface Admission {
  requestId: string;
  /** Rate-limit headers to put on the response (x-ratelimit-*). */
  headers: Record<string, string>;
}

/** `recovered`: billed from the backend's usage report alone (the worker never settled it: worker/usage/merge.ts). */
export type UsageStatus = "ok" | "cancelled" | "error" | "rejected" | "cache_hit" | "recovered";

export interface SettleRequest {
  requestId: string;
  model: string;
  pricing: Pricing;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  status: UsageStatus;
  startedAt: number;
  endedAt: number;
}
