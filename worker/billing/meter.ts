/**
 * Admission and settlement: the only calls the request path makes into the money path.
 *
 *   assertTierAllowed(account, model)          -> throws 404 model_not_found (as for an unknown model)
 *   admit(env, account, req, ctx?)             -> Admission (x-ratelimit-* headers) or throws ApiError 429/409/503
 *   settle(env, account, req)                  -> Promise<void> that never rejects; hand it to c.executionCtx.waitUntil
 *   recordRejected(env, account, {requestId, model}) -> settle() for a request refused before any backend
 *   extendReservation(env, account, requestId, units) -> true when one more completion slice is reserved
 *   countRequest(env, account, model)          -> x-ratelimit-* headers, or throws 429 (RPM only, unmetered)
 *   budgetStatus(env, account)                 -> spent and reserved units this month
 *
 * admit reserves prompt + max completion tokens (TPM) and the worst-case cost of the prompt plus the
 * completion's first slice (budget) in the key's Durable Object; extendReservation adds slices as
 * tokens stream (worker/billing/slices.ts). settle releases that reservation, charges the exact actual cost and writes
 * the one ledger row for the request id; whatever part fails goes to USAGE_QUEUE, whose consumer
 * replays it idempotently, so usage is not lost and never counted twice.
 */
import type { Env } from "../env";
import { ApiError, internalError } from "../errors";
import { modelNotFound } from "../config/tiers";
import { budgetRefusal, NO_RETRY } from "./budget";
import { insertUsage, type UsageRecord } from "./ledger";
import { isValidPricing, reservationUnits, tokenCount } from "./money";
import { retryHeaders } from "./rate";
import { rejectedRecord, toRecord } from "./records";
import type { Account, Admission, AdmitRequest, LimiterAdmitResult, LimiterStatus, SettleRequest } from "./types";

/** Body of a USAGE_QUEUE message: the record plus which of its two writes still have to happen. */
export interface UsageMessage {
  v: 1;
  record: UsageRecord;
  ledger: boolean;
  limiter: boolean;
}

/** The key's KeyLimiter stub: DurableObjectStub<KeyLimiter>, as the generated Env types the binding. */
export function limiterFor(env: Env, keyId: string) {
  return env.KEY_LIMITER.get(env.KEY_LIMITER.idFromName(keyId));
}

/**
 * Throws when `model` is not in the key's plan: the same 404 model_not_found as for a model that does
 * not exist, so a key cannot probe which tier names are real.
 */
export function assertTierAllowed(account: Account, model: string, now = Date.now()): void {
  if (!account.tiers.includes(model)) throw modelNotFound(model);
  const refused = rpmRefusals.get(rpmKey(account, model));
  if (refused && refused.until > now) throw refusedForRpm(model, refused.headers, refused.until - now);
}

/**
 * Limits before parsing: once the key's limiter refused a tier for RPM, this isolate
 * refuses that key and tier until the limiter's own Retry-After, before the body is tokenized, with no
 * Durable Object round trip and no ledger row. It only repeats the limiter's answer: nothing but time
 * refills an RPM bucket, and the plan's rpm is part of the key, so a PATCHed plan is asked afresh.
 */
const rpmRefusals = new Map<string, { until: number; headers: Record<string, string> }>();
const RPM_REFUSALS_MAX = 10_000;
const rpmKey = (account: Account, model: string) => `${account.keyId}\u0000${model}\u0000${account.rpm}`;

function rememberRpmRefusal(
  account: Account,
  model: string,
  headers: Record<string, string>,
  retryAfterMs: number,
  now: number,
): void {
  const k = rpmKey(account, model);
  rpmRefusals.delete(k);
  if (rpmRefusals.size >= RPM_REFUSALS_MAX) rpmRefusals.delete(rpmRefusals.keys().next().value as string);
  rpmRefusals.set(k, { until: now + retryAfterMs, headers });
}

const refusedForRpm = (model: string, headers: Record<string, string>, ms: number) =>
  new ApiError(
    429,
    `Rate limit reached for requests per minute on model '${model}'.`,
    "rate_limit_error",
    "rate_limit_exceeded",
    null,
    {
      ...headers,
      ...retryHeaders(ms),
    },
  );

/** Anything with waitUntil: Hono's c.executionCtx or the runtime's ExecutionContext. */
export interface WaitUntil {
  waitUntil(promise: Promise<unknown>): void;
}

export async function admit(env: Env, account: Account, req: AdmitRequest, ctx?: WaitUntil): Promise<Admission> {
  assertTierAllowed(account, req.model);
  if (!isValidPricing(req.pricing)) throw internalError();
  const prompt = tokenCount(req.promptTokens);
  const maxCompletion = tokenCount(req.maxCompletionTokens);
  const reservedCompletion = Math.min(maxCompletion, tokenCount(req.budgetCompletionTokens ?? maxCompletion));
  const reserveUnits = reservationUnits(req.pricing, prompt, reservedCompletion);

  let result: LimiterAdmitResult;
  try {
    result = await limiterFor(env, account.keyId).admit({
      keyId: account.keyId,
      requestId: req.requestId,
      pricing: req.pricing,
      tier: req.model,
      rpm: account.rpm,
      tpm: account.tpm,
      budgetMicros: account.monthlyBudgetMicros,
      tokens: prompt + maxCompletion,
      reserveUnits: reserveUnits.toString(),
      ...(countedFirst.delete(req.requestId) ? { requestCounted: true } : {}),
      ...(req.batchId ? { batchLine: true } : {}),
    });
  } catch (err) {
    // Fail closed: without the limiter we cannot promise the budget.
    console.error(JSON.stringify({ level: "error", where: "admit", request_id: req.requestId, error: String(err) }));
    throw limiterUnavailable();
  }
  if (result.ok) {
    rememberAdmitted(req.requestId);
    return { requestId: req.requestId, headers: result.headers };
  }

  if (result.reason === "requests" && result.retryAfterMs !== null)
    rememberRpmRefusal(account, req.model, result.headers, result.retryAfterMs, Date.now());
  if (result.reason !== "duplicate") {
    const rejected = rejectedRecord(account, req.requestId, req.model, Date.now());
    const write = writeRecord(env, req.batchId ? { ...rejected, batchId: req.batchId } : rejected, {
      ledger: true,
      limiter: false,
    });
    if (ctx) ctx.waitUntil(write);
    else await write;
  }
  if (result.reason === "budget" && result.spend)
    throw budgetRefusal(
      { budgetMicros: account.monthlyBudgetMicros, ...result.spend },
      {
        model: req.model,
        pricing: req.pricing,
        promptTokens: prompt,
        maxCompletionTokens: maxCompletion,
        reservedCompletionTokens: reservedCompletion,
        reserveUnits: reserveUnits.toString(),
      },
      Date.now(),
      result.headers,
    );
  throw refusal(result, req.model);
}

/**
 * Grows a running request's budget reservation by `units` (the next completion slice). False when the
 * budget does not cover it, or when the limiter cannot be reached: without it the budget cannot be
 * promised, so the generation stops (fail closed, as admit does).
 */
export async function extendReservation(
  env: Env,
  account: Account,
  requestId: string,
  units: bigint,
  o: { batchLine?: boolean } = {},
): Promise<boolean> {
  try {
    return await limiterFor(env, account.keyId).extend({
      requestId,
      budgetMicros: account.monthlyBudgetMicros,
      units: units.toString(),
      ...(o.batchLine ? { batchLine: true } : {}),
    });
  } catch (err) {
    console.error(JSON.stringify({ level: "error", where: "extend", request_id: requestId, error: String(err) }));
    return false;
  }
}

const limiterUnavailable = () =>
  new ApiError(
    503,
    "Rate limiter unavailable, please retry.",
    "service_unavailable",
    "limiter_unavailable",
    null,
    retryHeaders(1000),
  );

/** One request against the tier's RPM for an unmetered call (tokenize): nothing reserved, nothing billed. */
export async function countRequest(env: Env, account: Account, model: string): Promise<Record<string, string>> {
  assertTierAllowed(account, model);
  let result: LimiterAdmitResult;
  try {
    result = await limiterFor(env, account.keyId).countRequest({ tier: model, rpm: account.rpm, tpm: account.tpm });
  } catch (err) {
    console.error(JSON.stringify({ level: "error", where: "count_request", error: String(err) }));
    throw limiterUnavailable();
  }
  if (result.ok) return result.headers;
  if (result.reason === "requests" && result.retryAfterMs !== null)
    rememberRpmRefusal(account, model, result.headers, result.retryAfterMs, Date.now());
  throw refusal(result, model);
}

/**
 * Limits before work: a metered request counted against RPM before its body is tokenized
 * (middleware/rpm-first.ts), so its admit does not count it again. Bounded like admittedHere; the
 * middleware forgets the id when the request ends, admitted or not.
 */
const countedFirst = new Set<string>();

export async function countRequestFirst(
  env: Env,
  account: Account,
  model: string,
  requestId: string,
): Promise<Record<string, string>> {
  const headers = await countRequest(env, account, model);
  if (countedFirst.size >= ADMITTED_MAX) countedFirst.delete(countedFirst.values().next().value as string);
  countedFirst.add(requestId);
  return headers;
}

export const forgetCountedFirst = (requestId: string) => countedFirst.delete(requestId);

/** The key's spend and in-flight reservations for the current month (from its Durable Object). */
export async function budgetStatus(env: Env, account: Account): Promise<LimiterStatus> {
  try {
    return await limiterFor(env, account.keyId).status(account.keyId);
  } catch (err) {
    console.error(JSON.stringify({ level: "error", where: "budget_status", error: String(err) }));
    throw limiterUnavailable();
  }
}

function refusal(r: Extract<LimiterAdmitResult, { ok: false }>, model: string): ApiError {
  const headers = { ...r.headers, ...(r.retryAfterMs !== null ? retryHeaders(r.retryAfterMs) : {}) };
  switch (r.reason) {
    case "budget": // only without the limiter's figures (admit builds the full message: billing/budget.ts)
      return new ApiError(
        429,
        "This request does not fit what remains of this key's monthly budget.",
        "insufficient_quota",
        "insufficient_quota",
        null,
        { ...headers, ...NO_RETRY },
      );
    case "requests":
      return new ApiError(
        429,
        `Rate limit reached for requests per minute on model '${model}'.`,
        "rate_limit_error",
        "rate_limit_exceeded",
        null,
        headers,
      );
    case "tokens":
      return new ApiError(
        429,
        `Rate limit reached for tokens per minute on model '${model}'.`,
        "rate_limit_error",
        "rate_limit_exceeded",
        null,
        headers,
      );
    case "too_large":
      return new ApiError(
        429,
        `Request too large for model '${model}': prompt plus max_tokens exceeds your tokens-per-minute limit. Reduce max_tokens or the prompt.`,
        "rate_limit_error",
        "request_too_large",
        null,
        { ...headers, ...NO_RETRY },
      );
    case "duplicate":
      return new ApiError(409, "Duplicate request id.", "invalid_request_error", "duplicate_request_id");
  }
}

/**
 * Ids admitted in this isolate and not yet settled. A "rejected" record for an id that was never
 * admitted holds no reservation and costs nothing, so it skips the Durable Object round trip
 * (under wrangler dev each subrequest costs ~3-4 ms of CPU). An id admitted here keeps the DO call,
 * so its reservation is released at once. Bounded: an id that somehow never settles is dropped
 * oldest-first, and then falls back to the DO's reservation expiry.
 */
const admittedHere = new Set<string>();
const ADMITTED_MAX = 10_000;

function rememberAdmitted(requestId: string): void {
  if (admittedHere.size >= ADMITTED_MAX) admittedHere.delete(admittedHere.values().next().value as string);
  admittedHere.add(requestId);
}

/** For tests: how many admitted ids this isolate still tracks. */
export const admittedTracked = () => admittedHere.size;

/** Records exactly one usage record (idempotent on requestId), charges it, releases the reservation. Never rejects. */
export async function settle(env: Env, account: Account, req: SettleRequest): Promise<void> {
  const admitted = admittedHere.delete(req.requestId);
  try {
    await writeRecord(env, toRecord(account, req), { ledger: true, limiter: admitted || req.status !== "rejected" });
  } catch (err) {
    console.error(JSON.stringify({ level: "error", where: "settle", request_id: req.requestId, error: String(err) }));
  }
}

/** For a request refused after auth but before any backend (e.g. a 400): zero cost, status "rejected". */
export function recordRejected(
  env: Env,
  account: Account,
  r: { requestId: string; model: string; startedAt?: number; batchId?: string },
): Promise<void> {
  const now = Date.now();
  return settle(env, account, {
    ...(r.batchId ? { batchId: r.batchId } : {}),
    requestId: r.requestId,
    model: r.model,
    pricing: { input: 0, cached_input: 0, output: 0 },
    promptTokens: 0,
    cachedTokens: 0,
    completionTokens: 0,
    status: "rejected",
    startedAt: r.startedAt ?? now,
    endedAt: now,
  });
}

/** Does the requested writes; anything that failed is queued for the consumer to replay. Never rejects. */
export async function writeRecord(
  env: Env,
  record: UsageRecord,
  todo: { ledger: boolean; limiter: boolean },
): Promise<void> {
  const [ledger, limiter] = await Promise.allSettled([
    todo.ledger ? insertUsage(env.DB, record) : Promise.resolve(),
    todo.limiter ? limiterSettle(env, record) : Promise.resolve(),
  ]);
  if (ledger.status === "fulfilled" && limiter.status === "fulfilled") return;
  const msg: UsageMessage = {
    v: 1,
    record,
    ledger: ledger.status === "rejected",
    limiter: limiter.status === "rejected",
  };
  try {
    await env.USAGE_QUEUE.send(msg);
  } catch (err) {
    // Last resort: the full record in the logs, so it can be replayed by hand.
    console.error(JSON.stringify({ level: "error", where: "usage_queue", error: String(err), usage: msg }));
  }
}

export function limiterSettle(env: Env, r: UsageRecord): Promise<void> {
  return limiterFor(env, r.keyId).settle({
    keyId: r.keyId,
    requestId: r.requestId,
    tier: r.model,
    tokens: r.promptTokens + r.completionTokens,
    units: r.costUnits,
    startedAt: r.startedAt,
    ...(r.previousUnits !== undefined ? { previousUnits: r.previousUnits } : {}),
    ...(r.deliveredFinal ? { final: true } : {}),
  });
}
