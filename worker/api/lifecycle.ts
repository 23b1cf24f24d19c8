/**
 * One lifecycle for every metered request (chat, embeddings, response-cache hits):
 *
 *   new Lifecycle(c, endpoint) -> admit(...) -> dispatch (the route's) -> settle(...) exactly once -> finish(status)
 *
 * - The client signal starts listening before the handler's first await, so a client that leaves at any
 *   point (validation, admit, dispatch, generation) is seen: `client` aborts once, from request.signal or
 *   from the response body being cancelled (`clientGone()`). Leaving is a cancellation in every mode:
 *   the route cancels its replica, drains it and settles `cancelled` with what was generated.
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
import type { Context } from "hono";
import type { AppEnv } from "../factory";
import { admit, extendReservation, recordRejected, settle } from "../billing/meter";
import { batchPricing, costUnits, reservationUnits, unitsToMicrosCeil } from "../billing/money";
import { SlicedReservation, firstSlice } from "../billing/slices";
import type { Account, Pricing, UsageStatus } from "../billing/types";
import { ApiError } from "../errors";
import { writeRequestPoint } from "./analytics";
import { logRequest, type RequestLog } from "./request-log";

/**
 * How often a running stream re-reads its key's revocation from D1 (not the 3 s isolate cache). A
 * revoked key's streams end within this plus a drain; one D1 read per interval per open stream.
 * Tests shorten it.
 */
export const REVOCATION_POLL = { ms: 2_000 };

/** The error event a stream ends with when its key was revoked mid-answer. */
export const keyRevoked = () =>
  new ApiError(401, "This API key was revoked; the answer was stopped.", "authentication_error", "key_revoked");

/** The status (and log status) of a request whose client left before any response (nginx's convention). */
export const CLIENT_CLOSED = 499;

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

export class Lifecycle {
  readonly startedAt = Date.now();
  readonly requestId: string;
  readonly account: Account;
  readonly log: Omit<RequestLog, "latency_ms" | "status">;
  /** Aborts once, when the client went away. */
  readonly client = new AbortController();
  private settled = false;
  private admitted = false;
  /** Set when the key was revoked while this request ran (watchRevocation). */
  revoked = false;
  private model = "";
  private pricing: Pricing | null = null;
  /** What settle() billed (the analytics point's tokens and cost), and whether its point was written. */
  private billed: Tokens | null = null;
  private pointWritten = false;
  /** Set when this request is a batch line (worker/batch/): half price, and its ledger row names the batch. */
  readonly batchId: string | undefined;

  constructor(
    private readonly c: Context<AppEnv>,
    endpoint: RequestLog["endpoint"],
  ) {
    this.requestId = c.get("requestId");
    this.account = c.get("account");
    this.log = { request_id: this.requestId, key_id: this.account.keyId, endpoint, model: null };
    this.batchId = c.get("batch")?.batchId;
    const signal = c.req.raw.signal as AbortSignal | undefined;
    if (signal?.aborted) this.clientGone();
    else signal?.addEventListener("abort", () => this.clientGone(), { once: true });
  }

  /** The client went away (request.signal, or the response body was cancelled). */
  clientGone(): void {
    if (!this.client.signal.aborted) this.client.abort();
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
        this.c.env,
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
        this.ctx,
      );
      this.admitted = true;
      return { headers: a.headers };
    } catch (err) {
      // A batch line retried after its worker died mid-line: its first attempt was admitted under this
      // same ledger id. It runs again on that admission; the settle merges into the id's one row (max).
      if (this.batchId && err instanceof ApiError && err.code === "duplicate_request_id") {
        this.admitted = true;
        return { headers: {} };
      }
      this.settled = true;
      throw err;
    }
  }

  /**
   * Ends this request like a client that left (cancel, drain, exact bill) if its key is revoked while it
   * runs; `revoked` tells the relay to say why. Returns the function that stops watching.
   */
  watchRevocation(): () => void {
    const timer = setInterval(() => {
      this.c.env.DB.prepare("SELECT revoked_at FROM api_keys WHERE id = ?")
        .bind(this.account.keyId)
        .first<{ revoked_at: number | null }>()
        .then((r) => {
          if (r && r.revoked_at === null) return;
          clearInterval(timer);
          this.revoked = true;
          this.clientGone();
        })
        .catch(() => {}); // D1 unavailable: keep serving (fail open; the key cache still refuses new requests)
    }, REVOCATION_POLL.ms);
    return () => clearInterval(timer);
  }

  /** The rest of the completion's budget, reserved in slices as tokens stream. */
  slices(maxTokens: number): SlicedReservation {
    const pricing = this.pricing!;
    return new SlicedReservation({
      maxTokens,
      extend: (tokens) =>
        extendReservation(this.c.env, this.account, this.requestId, reservationUnits(pricing, 0, tokens)),
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
    this.c.executionCtx.waitUntil(afterResponse().then(() => settle(this.c.env, this.account, req)));
  }

  /**
   * Nothing charged: the client left before any replica started it, or replicas failed before any token
   * (a failure is final: a replica's later report of the work it did is not billed).
   */
  settleEmpty(status: "cancelled" | "error"): void {
    this.settle({ promptTokens: 0, cachedTokens: 0, completionTokens: 0, status, deliveredFinal: status === "error" });
  }

  /**
   * A route's catch-all: an admitted request that ends in an error before it was settled leaves a
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
      this.c.executionCtx.waitUntil(afterResponse().then(() => recordRejected(this.c.env, this.account, r)));
    }
    this.finish(err instanceof ApiError ? err.status : 500, {
      error: err instanceof Error ? err.message : String(err),
    });
    return err;
  }

  /** The runtime's ExecutionContext (Hono types it more narrowly than workers-types). */
  get ctx(): ExecutionContext {
    return this.c.executionCtx as unknown as ExecutionContext;
  }

  finish(status: number, extra: Partial<RequestLog> = {}): void {
    const entry = { ...this.log, ...extra, status, latency_ms: Date.now() - this.startedAt };
    logRequest(entry);
    if (this.pointWritten) return;
    this.pointWritten = true;
    const billed = this.billed ?? { promptTokens: 0, cachedTokens: 0, completionTokens: 0 };
    writeRequestPoint(this.c.env.ANALYTICS, {
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
