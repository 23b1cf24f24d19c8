/**
 * One metered request (chat, embeddings, response-cache hits), with no HTTP in it:
 *
 *   new MeteredRequest(scope) -> admit(...) -> dispatch -> settle(...) exactly once -> finish(status)
 *
 * - `scope.signal` is the caller's one cancellation signal (for an HTTP request: request.signal or the
 *   response body being cancelled, composed by the route before its first await, so a client that leaves
 *   at any point is seen). Leaving is a cancellation in every mode: the replica is cancelled, drained and
 *   settled `cancelled` with what was generated.
 * - admit reserves the prompt plus the completion's first budget slice; `slices()` reserves the rest as
 *   tokens stream (billing/slices.ts).
 * - settle runs once whatever happens (a second call is ignored), under waitUntil and after the response
 *   has started, so it survives a disconnect. A request refused by admit has its zero-cost `rejected`
 *   record; one that fails after admission but before settling gets one from `fail` (it also releases the
 *   reservation). Every 429 has its `rejected` row (the quota trail a key sees in /v1/usage/requests),
 *   including the isolate's repeat of an RPM refusal, which costs one D1 insert and no tokenizing. Other
 *   refusals before admission (400, 404, 413) write no ledger row: they cost nothing, the request log
 *   records them, and so a client cannot turn malformed requests into D1 writes, nor put a raw client
 *   string in the ledger's tier column.
 */
import type { Env } from "../env";
import { admit, extendReservation, recordRejected, settle } from "../billing/meter";
import { batchPricing, costUnits, reservationUnits, unitsToMicrosCeil } from "../billing/money";
import { SlicedReservation, firstSlice } from "../billing/slices";
import type { Account, Pricing, UsageStatus } from "../billing/types";
import { ApiError } from "../errors";
import { writeRequestPoint } from "./analytics";
import { logRequest, type RequestLog } from "./request-log";

/** The status (and log status) of a request whose client left before any response (nginx's convention). */
export const CLIENT_CLOSED = 499;

/** What a metered request needs from its caller: an HTTP route, or a queue consumer. */
export interface RequestScope {
  env: Env;
  account: Account;
  requestId: string;
  endpoint: RequestLog["endpoint"];
  /** Aborts once, when the caller (the client) went away. */
  signal: AbortSignal;
  /** Keeps work (settle, cache writes) alive past the response: the runtime's ExecutionContext.waitUntil. */
  waitUntil: (promise: Promise<unknown>) => void;
  /** Set when the request is a batch line (worker/batch/): billed at the batch price, its ledger row names the batch. */
  batchId?: string;
}

/**
 * Yields one macrotask so the handler returns its Response (and the runtime starts writing it)
 * before the settle subrequests start competing for the isolate. The work stays under waitUntil.
 */
const afterResponse = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

export interface Tokens {
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
}

export interface Settlement extends Tokens {
  status: UsageStatus;
  /** The tokens are what the client received after a backend failure: no backend report raises them. */
  deliveredFinal?: boolean;
}

export interface Admitted {
  /** x-ratelimit-* headers for the response. */
  headers: Record<string, string>;
}

export class MeteredRequest {
  readonly startedAt = Date.now();
  readonly requestId: string;
  readonly account: Account;
  readonly env: Env;
  readonly signal: AbortSignal;
  readonly waitUntil: (promise: Promise<unknown>) => void;
  readonly log: Omit<RequestLog, "latency_ms" | "status">;
  private settled = false;
  private admitted = false;
  private model = "";
  private pricing: Pricing | null = null;
  /** What settle() billed (the analytics point's tokens and cost), and whether its point was written. */
  private billed: Tokens | null = null;
  private pointWritten = false;
  /** Set when this request is a batch line (worker/batch/): half price, and its ledger row names the batch. */
  readonly batchId: string | undefined;

  constructor(scope: RequestScope) {
    this.requestId = scope.requestId;
    this.account = scope.account;
    this.env = scope.env;
    this.signal = scope.signal;
    this.waitUntil = scope.waitUntil;
    this.log = { request_id: this.requestId, key_id: this.account.keyId, endpoint: scope.endpoint, model: null };
    this.batchId = scope.batchId;
  }

  setModel(model: string): void {
    this.model = model;
    this.log.model = model;
  }

  /**
   * Reserves the request in the key's limiter: TPM for prompt + maxCompletionTokens, budget for the
   * prompt plus the completion's first slice. A refusal has already written its record.
   */
  async admit(tierPricing: Pricing, promptTokens: number, maxCompletionTokens: number): Promise<Admitted> {
    const pricing = this.batchId ? batchPricing(tierPricing) : tierPricing;
    this.pricing = pricing;
    try {
      const a = await admit(
        this.env,
        this.account,
        {
          requestId: this.requestId,
          model: this.model,
          pricing,
          promptTokens,
          maxCompletionTokens,
          budgetCompletionTokens: firstSlice(maxCompletionTokens),
          ...(this.batchId ? { batchId: this.batchId } : {}),
        },
        this,
      );
      this.admitted = true;
      return { headers: a.headers };
    } catch (err) {
      // A batch line retried after its worker died mid-line, its first attempt still holding the
      // reservation under this same ledger id: it runs again on it (an attempt already settled is reserved
      // afresh by the limiter instead). The settle merges into the id's one row (max).
      if (this.batchId && err instanceof ApiError && err.code === "duplicate_request_id") {
        this.admitted = true;
        return { headers: {} };
      }
      this.settled = true;
      throw err;
    }
  }

  /** The rest of the completion's budget, reserved in slices as tokens stream. */
  slices(maxTokens: number): SlicedReservation {
    const pricing = this.pricing!;
    return new SlicedReservation({
      maxTokens,
      extend: (tokens) =>
        extendReservation(this.env, this.account, this.requestId, reservationUnits(pricing, 0, tokens), {
          batchLine: this.batchId !== undefined,
        }),
    });
  }

  /** `usage.cost_micros`: the exact cost of these tokens, rounded up to whole micro-euros. */
  costMicros(t: Tokens): number {
    return this.pricing ? unitsToMicrosCeil(costUnits(this.pricing, t)) : 0;
  }

  /** Charges and records the request exactly once, in the background (survives a client disconnect). */
  settle(s: Settlement): void {
    if (this.settled) return;
    this.settled = true;
    this.billed = { promptTokens: s.promptTokens, cachedTokens: s.cachedTokens, completionTokens: s.completionTokens };
    Object.assign(this.log, {
      prompt_tokens: s.promptTokens,
      cached_tokens: s.cachedTokens,
      completion_tokens: s.completionTokens,
    });
    const pricing = this.pricing ?? { input: 0, cached_input: 0, output: 0 };
    const req = {
      requestId: this.requestId,
      model: this.model,
      pricing,
      ...s,
      startedAt: this.startedAt,
      endedAt: Date.now(),
      ...(this.batchId ? { batchId: this.batchId } : {}),
    };
    this.waitUntil(afterResponse().then(() => settle(this.env, this.account, req)));
  }

  /**
   * Nothing charged: the client left before any replica started it, or replicas failed before any token
   * (a failure is final: a replica's later report of the work it did is not billed).
   */
  settleEmpty(status: "cancelled" | "error"): void {
    this.settle({ promptTokens: 0, cachedTokens: 0, completionTokens: 0, status, deliveredFinal: status === "error" });
  }

  /**
   * A caller's catch-all: an admitted request that ends in an error before it was settled leaves a
   * zero-cost `rejected` record (admit's own refusals already have theirs; nothing before admission);
   * logs the status. Returns the error.
   */
  fail(err: unknown): unknown {
    // A 429 before admission is the isolate repeating the limiter's RPM refusal (billing/meter.ts): like
    // the limiter's own refusals it leaves a `rejected` row, for a real tier name of the key's plan.
    const rateRefusal = err instanceof ApiError && err.status === 429;
    if (!this.settled && (this.admitted || rateRefusal)) {
      this.settled = true;
      const r = {
        requestId: this.requestId,
        model: this.model,
        startedAt: this.startedAt,
        ...(this.batchId ? { batchId: this.batchId } : {}),
      };
      this.waitUntil(afterResponse().then(() => recordRejected(this.env, this.account, r)));
    }
    this.finish(err instanceof ApiError ? err.status : 500, {
      error: err instanceof Error ? err.message : String(err),
    });
    return err;
  }

  finish(status: number, extra: Partial<RequestLog> = {}): void {
    const entry = { ...this.log, ...extra, status, latency_ms: Date.now() - this.startedAt };
    logRequest(entry);
    if (this.pointWritten) return;
    this.pointWritten = true;
    const billed = this.billed ?? { promptTokens: 0, cachedTokens: 0, completionTokens: 0 };
    writeRequestPoint(this.env.ANALYTICS, {
      keyId: this.account.keyId,
      // Only a tier of the key's plan: an unknown name is the client's raw string.
      tier: this.account.tiers.includes(this.model) ? this.model : "(unknown)",
      endpoint: entry.endpoint,
      status,
      cache: entry.cache ?? "",
      ...billed,
      costMicros: this.costMicros(billed),
      latencyMs: entry.latency_ms,
      ttftMs: entry.ttft_ms ?? null,
    });
  }
}
