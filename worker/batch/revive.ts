/**
 * Re-driving a batch whose queue messages were lost. Cloudflare Queues keep a message until it is
 * acknowledged, but the local emulator keeps its queue in the worker runtime's memory: a runtime killed
 * mid-batch (npm start restarts it) takes every pending line message with it, and the batch would stay
 * open forever. A message past the queue's retention, or a send lost between a D1 write and the queue,
 * would do the same in production.
 *
 * Every handled message, and every running line (a heartbeat), stamps the batch's `active_at`; a line
 * waiting out a rate limit stamps when it will be back. A batch still open and silent for REVIVE.staleMs
 * past that is stale. Reading it (GET of the batch: what a client polling for the result does) then
 * claims a re-queue: the batch's generation goes up and one validate message of the new generation is
 * sent, which queues the lines not yet recorded (consumer.ts). Messages of an older generation are
 * dropped when delivered, so a re-queued line runs from one copy, and its ledger id is the same as before:
 * a line cut short by the crash is billed once (the id's writes merge).
 *
 * Each further re-queue waits twice as long (a batch whose messages sit behind a long backlog is not
 * re-queued over and over).
 */
import type { Env } from "../env";
import { validateMessage } from "./messages";
import { type BatchRow, claimRequeue } from "./store";

export const REVIVE = {
  /** Silence after the last activity before an open batch counts as stale. */
  staleMs: 10_000,
  /** How often a running line stamps activity (well under staleMs). */
  heartbeatMs: 3_000,
  /** The wait doubles with each re-queue, up to staleMs << maxDoublings. */
  maxDoublings: 6,
};

const OPEN: readonly BatchRow["status"][] = ["validating", "in_progress", "finalizing", "cancelling"];

/** Whether the batch is open and has shown no queue activity for longer than its generation allows. */
export function isStale(b: BatchRow, now = Date.now()): boolean {
  if (!OPEN.includes(b.status)) return false;
  const since = Math.max(b.active_at ?? 0, b.created_at);
  return now - since > REVIVE.staleMs * 2 ** Math.min(b.gen, REVIVE.maxDoublings);
}

/** Re-queues a stale batch once (the first caller wins); true when this call did. */
export async function reviveIfStale(
  env: Pick<Env, "DB" | "BATCH_QUEUE">,
  b: BatchRow,
  now = Date.now(),
): Promise<boolean> {
  if (!isStale(b, now)) return false;
  const gen = await claimRequeue(env.DB, b.id, b.gen, now);
  if (gen === null) return false;
  try {
    await env.BATCH_QUEUE.send(validateMessage(b.id, gen));
  } catch (err) {
    // The batch is stale again after the next, longer wait; the reader still gets its answer.
    console.error(JSON.stringify({ level: "error", where: "batch_revive", batch_id: b.id, error: String(err) }));
    return false;
  }
  console.log(JSON.stringify({ level: "warn", where: "batch_revive", batch_id: b.id, gen }));
  return true;
}
