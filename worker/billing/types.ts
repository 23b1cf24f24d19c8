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

export type { Pricing } from "../config/tiers";
import type { UsageStatus } from "../../contract/api-accounts";
import type { Pricing } from "../config/tiers";

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
  /** Set for a batch line: its ledger row (a refusal's too) names the batch. */
  batchId?: string;
}

export interface Admission {
  requestId: string;
  /** Rate-limit headers to put on the response (x-ratelimit-*). */
  headers: Record<string, string>;
}

/** `recovered`: billed from the backend's usage report alone (the worker never settled it: worker/billing/report-merge.ts). */
export type { UsageStatus } from "../../contract/api-accounts";

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
  /**
   * The tokens are what the client received after a backend failure: final, whatever the backend's own
   * report counts later (README "Backend failures": only what was delivered is billed).
   */
  deliveredFinal?: boolean;
  /** Set for a batch line: its ledger row names the batch. */
  batchId?: string;
}

// The KeyLimiter Durable Object's inputs and outputs (billing/key-limiter.ts), here so that its callers
// (meter.ts, usage/) need not import the class module: it imports usage/ for its alarm.

export interface LimiterAdmitInput {
  /** The key this object belongs to (it rebuilds the month's spend from the ledger by it). */
  keyId: string;
  requestId: string;
  /** The tier's price now: a backend report for this request is priced with it (worker/billing/report-merge.ts). */
  pricing: Pricing;
  tier: string;
  rpm: number;
  tpm: number;
  budgetMicros: number;
  /** Prompt + max completion tokens. */
  tokens: number;
  /** Worst-case cost in units (1e-12 EUR), as a decimal string (exact). */
  reserveUnits: string;
  /** Already counted against RPM (countRequest, before the body was tokenized): admit must not count it again. */
  requestCounted?: boolean;
  /**
   * A batch line (its id is the same for every attempt): an id whose earlier attempt is settled is
   * reserved afresh instead of refused as a duplicate (the line runs again after its worker died).
   */
  batchLine?: boolean;
}

export type RefusalReason = "requests" | "tokens" | "too_large" | "budget" | "duplicate";

export type LimiterAdmitResult =
  | { ok: true; headers: Record<string, string> }
  | {
      ok: false;
      reason: RefusalReason;
      retryAfterMs: number | null;
      headers: Record<string, string>;
      /** On a budget refusal: this month's spend and the in-flight reservations it was weighed against (units). */
      spend?: { spentUnits: string; reservedUnits: string };
    };

export interface LimiterSettleInput {
  keyId: string;
  requestId: string;
  tier: string;
  /** Actual prompt + completion tokens. */
  tokens: number;
  /** The request's cost as this write knows it (units, decimal string): the id is charged up to the largest. */
  units: string;
  /**
   * What earlier writes of this id already charged (the ledger row's cost before this merge), used only
   * when the limiter no longer remembers the id (a report arriving after key-limiter.ts's RETAIN_MS): then
   * it charges the rest.
   */
  previousUnits?: string;
  startedAt: number;
  /** This write's cost is the id's charge, lower or higher, and no later write changes it (deliveredFinal). */
  final?: boolean;
}

/** One more slice of a running request's budget reservation (the completion streams in slices). */
export interface LimiterExtendInput {
  requestId: string;
  budgetMicros: number;
  /** Units to add to the request's reservation, decimal string. */
  units: string;
  /** A batch line: a reservation settled under it (its earlier attempt's late report) is reopened. */
  batchLine?: boolean;
}

/** A request that counts toward RPM but reserves and bills nothing (tokenize, detokenize). */
export interface LimiterCountInput {
  tier: string;
  rpm: number;
  tpm: number;
}

export interface LimiterStatus {
  month: string;
  spentUnits: string;
  reservedUnits: string;
  reservations: number;
}
