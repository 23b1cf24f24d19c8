/**
 * Silence watchdogs on a replica: a replica that accepts a request and then says nothing (a stopped or
 * wedged process keeps its sockets open) would otherwise hold the request until the client gives up.
 * Three bounds, from the STALL_TIMEOUT_MS and FIRST_TOKEN_TIMEOUT_MS vars (serving/timeouts.ts):
 *  - "headers": the replica answers /v1/generate's headers as soon as it admits the request;
 *  - "first_event": admission to the first event covers queue wait and the prefill of a long prompt;
 *  - "stall": the gap between two events once tokens flow.
 * Timers go through `watchdog.arm`, which tests replace to fire a stall on their own event, not a clock.
 */

export type WatchdogKind = "headers" | "first_event" | "stall";

export const watchdog = {
  /** Calls `fire` after `ms` unless the returned function disarms it first. */
  arm(_kind: WatchdogKind, ms: number, fire: () => void): () => void {
    const t = setTimeout(fire, ms);
    return () => clearTimeout(t);
  },
};

/** The replica said nothing for `ms`: another replica may succeed (before the first token). */
export class ReplicaStalled extends Error {
  constructor(
    readonly kind: WatchdogKind,
    readonly ms: number,
  ) {
    super(`replica stalled: no ${kind === "headers" ? "response headers" : "event"} within ${ms} ms (${kind})`);
  }
}

/**
 * The iterator's next result, or ReplicaStalled when nothing comes within `ms`; `onStall` runs first (it
 * aborts the fetch, which also settles the abandoned `next()`, whose rejection is swallowed here).
 */
export async function nextWithin<T>(
  it: AsyncIterator<T>,
  kind: WatchdogKind,
  ms: number,
  onStall: () => void,
): Promise<IteratorResult<T>> {
  let disarm = () => {};
  const stalled = new Promise<never>((_, reject) => {
    disarm = watchdog.arm(kind, ms, () => {
      onStall();
      reject(new ReplicaStalled(kind, ms));
    });
  });
  const next = it.next();
  try {
    return await Promise.race([next, stalled]);
  } finally {
    disarm();
    next.catch(() => {});
    stalled.catch(() => {});
  }
}
