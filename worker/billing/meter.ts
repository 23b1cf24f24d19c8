/**
 * Admission and settlement: the only two calls the request path makes into the money path.
 * STUB: owned by the money-path work.
 */
import type { Env } from "../env";
import type { Account, Admission, AdmitRequest, SettleRequest } from "./types";

/** Reserves prompt + max completion tokens against the key's limits and budget; throws ApiError 429 when refused. */
export async function admit(_env: Env, _account: Account, req: AdmitRequest): Promise<Admission> {
  return { requestId: req.requestId, headers: {} };
}

/** Records exactly one usage record (idempotent on requestId) and releases the reservation. Never throws. */
export async function settle(_env: Env, _account: Account, _req: SettleRequest): Promise<void> {}
