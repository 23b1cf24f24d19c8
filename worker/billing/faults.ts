/**
 * Fault injection for the local soak (npm run soak -- --faults): D1 ledger writes that fail for a window,
 * so usage records must reach the ledger through USAGE_QUEUE (billing/meter.ts writeRecord ->
 * billing/ledger-queue.ts). The state is isolate-local and starts disarmed; only the route in
 * dev/fault-routes.ts arms it, and that route exists only when the FAULTS var is "1", which wrangler.toml
 * never sets (the soak's local stack does). Holding a lock on miniflare's SQLite file from outside was
 * tried first: it fails D1 reads as well, so requests die at the key lookup before any billing.
 */

const d1 = { failUntil: 0, refused: 0 };

/** Makes every ledger write fail for the next `ms` milliseconds. */
export function failD1Writes(ms: number, now = Date.now()): void {
  d1.failUntil = now + ms;
}

/** The error a ledger write throws while the window is open, else null (counted: the soak reports it). */
export function d1WriteFault(now = Date.now()): Error | null {
  if (now >= d1.failUntil) return null;
  d1.refused++;
  return new Error("D1_ERROR: injected fault (FAULTS=1): ledger writes are failing");
}

export function faultStatus(now = Date.now()): { d1: { failing_ms: number; refused_writes: number } } {
  return { d1: { failing_ms: Math.max(0, d1.failUntil - now), refused_writes: d1.refused } };
}
