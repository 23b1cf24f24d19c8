/**
 * A metered request's scope from an HTTP request: the authenticated key, the request id, the runtime's
 * waitUntil, and one cancellation signal joining request.signal with the caller's own (the response body
 * being cancelled). Listening starts before the handler's first await, so a client that leaves during
 * validation, admission or dispatch is seen.
 */
import type { Context } from "hono";
import type { RequestScope } from "../completion/metered";
import type { AppEnv } from "../factory";

export function requestScope(
  c: Context<AppEnv>,
  endpoint: RequestScope["endpoint"],
  ...signals: AbortSignal[]
): RequestScope {
  // Not every runtime gives a request a signal (a Request built in a test may lack one).
  const request = c.req.raw.signal as AbortSignal | undefined;
  return {
    env: c.env,
    account: c.get("account"),
    requestId: c.get("requestId"),
    endpoint,
    signal: AbortSignal.any(request ? [request, ...signals] : signals),
    waitUntil: (p) => c.executionCtx.waitUntil(p),
    // A batch line's request (worker/batch/line-request.ts): batch price, and its ledger row names the batch.
    ...(c.get("batch") ? { batchId: c.get("batch")!.batchId } : {}),
  };
}
