/**
 * Sending a request to a tier's replicas: in the router's order, retrying another replica on a
 * retryable failure before anything reached the client, with bounded attempts.
 */
import { ApiError, internalError } from "../errors";
import { BackendError } from "./backend";
import type { ReplicaRouter } from "./router";

export const MAX_ATTEMPTS = 3;
const RETRY_AFTER_S = 2;

export const unavailable = () =>
  new ApiError(
    503,
    "The model is temporarily unavailable. Please retry shortly.",
    "service_unavailable",
    "backend_unavailable",
    null,
    {
      "retry-after": String(RETRY_AFTER_S),
      "retry-after-ms": String(RETRY_AFTER_S * 1000),
    },
  );

/** 502: the replica speaks another wire version (contract/wire.ts WIRE_VERSION). */
export const incompatibleBackend = () =>
  new ApiError(
    502,
    "The model backend is not compatible with this API version. Please retry later.",
    "api_error",
    "backend_incompatible",
  );

/** Thrown when the client went away before a replica answered. */
export class ClientGone extends Error {
  constructor() {
    super("client disconnected");
  }
}

export interface Dispatched<T> {
  replica: string;
  value: T;
  attempts: number;
  /** Ends the in-flight count on the replica; call once, when the request is over. */
  release: () => void;
}

export interface AttemptLog {
  replica: string;
  error: string;
}

/**
 * Runs `attempt` on replicas in `order` until one succeeds. A BackendError marked retryable moves on
 * to the next replica; anything else (or the last failure) ends the request.
 */
export async function dispatch<T>(
  router: ReplicaRouter,
  order: readonly string[],
  signal: AbortSignal,
  attempt: (replica: string) => Promise<T>,
  failures: AttemptLog[] = [],
): Promise<Dispatched<T>> {
  const tries = order.slice(0, MAX_ATTEMPTS);
  for (let i = 0; i < tries.length; i++) {
    const replica = tries[i];
    if (signal.aborted) throw new ClientGone();
    const release = router.acquire(replica);
    try {
      const value = await attempt(replica);
      return { replica, value, attempts: i + 1, release };
    } catch (err) {
      release();
      if (signal.aborted) throw new ClientGone();
      failures.push({ replica, error: err instanceof Error ? err.message : String(err) });
      if (err instanceof BackendError && err.retryable) {
        router.recordFailure(replica);
        continue;
      }
      // A replica on another contract version: a deploy mismatch between edge and backend, not the caller's fault.
      if (err instanceof BackendError && err.kind === "wire_version") throw incompatibleBackend();
      // A non-retryable backend answer (4xx) means our config or request is wrong: log, generic 500.
      if (err instanceof BackendError) throw internalError();
      throw err;
    }
  }
  throw unavailable();
}
