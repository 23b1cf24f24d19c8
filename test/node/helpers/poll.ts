/**
 * Polling, for state nothing signals (a metric, a ledger row, a file, a freed port). Where a process or
 * a receiver can say when something happened, wait on that instead (helpers/backend.ts, line-log.ts).
 */

/** Waits `ms`. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Between two checks: 50 ms, doubling up to 500 ms. */
export const backoff = (attempt: number) => sleep(Math.min(50 * 2 ** attempt, 500));

/** Between two checks: only a turn of the event loop (each check is itself a round trip that paces the loop). */
export const nextTurn = () => new Promise<void>((r) => setImmediate(r));

/**
 * Re-runs `check` until it returns a value (not undefined), pausing between checks (`backoff` unless
 * told), and throws once `timeoutMs` has passed without one.
 */
export async function until<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 10_000,
  what = "condition",
  pause: (attempt: number) => Promise<void> = backoff,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await pause(attempt);
  }
}

/**
 * Probes up to `tries` times, `everyMs` apart, until `done` holds of what it returned; returns the last
 * value either way, for the caller to assert on.
 */
export async function poll<T>(
  probe: () => T | Promise<T>,
  done: (v: T) => boolean,
  o: { tries: number; everyMs: number },
): Promise<T> {
  let v = await probe();
  for (let i = 1; i < o.tries && !done(v); i++) {
    await sleep(o.everyMs);
    v = await probe();
  }
  return v;
}
