/**
 * The batch queue's consumer (BATCH_QUEUE): validates new batches and runs their lines.
 *
 * Crash and retry safety: a message is acknowledged only after its line is recorded (batch_lines) and its
 * request settled; anything thrown retries the message. A retried line that was already recorded is
 * skipped; one whose earlier attempt was admitted and then lost (the worker or consumer died) runs again
 * under the same ledger id, and the ledger and the KeyLimiter merge the id's writes by maximum, so it is
 * billed once (worker/usage/merge.ts). Queues deliver at least once: a duplicate delivery is the same case.
 *
 * Cancel: a line not yet started is recorded as cancelled without running; a running one sees the status
 * within CANCEL_POLL_MS and is cancelled like a client that left (replica cancelled and drained, billed
 * what it generated). A line reached after expires_at is recorded as expired, and the batch ends `expired`.
 *
 * Lost messages: every handled message and running line stamps the batch's activity, and a message of an
 * older generation than its batch's is dropped (revive.ts re-queues a silent batch under a new one).
 */
import type { Env } from "../env";
import { accountById } from "../billing/keys";
import { unauthorized } from "../errors";
import { maybeFinalize } from "./finalize";
import { readText } from "./files";
import { batchErrors, validateInput } from "./input";
import { BatchMessageSchema, type LineMessage, sendLines } from "./messages";
import { notRunLine, refusedLine } from "./results";
import { REVIVE } from "./revive";
import { type AppFetch, runLine } from "./runner";
import { getBatch, isRecorded, recordLine, recordLines, recordedLineNumbers, touch, transition } from "./store";

/** How often a running line re-reads its batch's status (one D1 read per running line per interval). */
export const CANCEL_POLL = { ms: 1_000 };
/** A line whose message failed (threw) this many times is written to the error file instead of being retried. */
export const LINE_GIVE_UP_ATTEMPTS = 10;

export async function consumeBatch(batch: MessageBatch<unknown>, env: Env, appFetch: AppFetch): Promise<void> {
  await Promise.all(batch.messages.map((m) => handle(m, env, appFetch)));
}

async function handle(m: Message<unknown>, env: Env, appFetch: AppFetch): Promise<void> {
  const parsed = BatchMessageSchema.safeParse(m.body);
  if (!parsed.success) {
    console.error(JSON.stringify({ level: "error", where: "batch_queue", error: "malformed message" }));
    m.ack();
    return;
  }
  const msg = parsed.data;
  try {
    if (msg.kind === "validate") await validate(env, msg.batchId, msg.gen);
    else {
      const delay = await processLine(env, appFetch, msg, m.attempts);
      // Refused for a while (rate limits): queued afresh, so waiting never counts toward giving up.
      // Sent before the ack: a crash between leaves a duplicate, which runs the line once (see above).
      // The batch counts as active until the line is back (revive.ts).
      if (delay !== null) {
        await touch(env.DB, msg.batchId, Date.now() + delay * 1000);
        await env.BATCH_QUEUE.send(msg, { delaySeconds: delay });
      }
    }
    m.ack();
  } catch (err) {
    console.error(JSON.stringify({ level: "error", where: "batch_queue", batch_id: msg.batchId, error: String(err) }));
    m.retry();
  }
}

/**
 * Reads and checks the input file; records bad lines, queues the good ones not yet recorded (all of them
 * the first time; the rest when a re-queue runs it again), or finalizes a batch with none left. Safe to repeat.
 */
export async function validate(env: Env, batchId: string, gen = 0): Promise<void> {
  const b = await getBatch(env.DB, batchId);
  if (!b || gen < b.gen || !["validating", "in_progress", "cancelling", "finalizing"].includes(b.status)) return;
  const text = await readText(env.FILES, b.input_file_id);
  if (text === null) {
    const errors = {
      object: "list",
      data: [{ code: "file_not_found", message: "The input file was deleted.", param: "input_file_id", line: null }],
    };
    await transition(env.DB, batchId, ["validating"], "failed", { errors: JSON.stringify(errors) });
    await transition(env.DB, batchId, ["cancelling"], "cancelled");
    return;
  }
  const { valid, bad } = validateInput(text, b.endpoint, { format: b.line_format, model: b.model });
  if (valid.length === 0) {
    await transition(env.DB, batchId, ["validating"], "failed", { errors: JSON.stringify(batchErrors(bad)) });
    await transition(env.DB, batchId, ["cancelling"], "cancelled");
    return;
  }
  await recordLines(
    env.DB,
    batchId,
    bad.map((l) => ({ line: l.line, outcome: "failed" as const, result: refusedLine(l.customId, l.error) })),
  );
  // The total first: the last line's finalize check compares against it.
  await env.DB.prepare("UPDATE batches SET total = ? WHERE id = ?")
    .bind(valid.length + bad.length, batchId)
    .run();
  await transition(env.DB, batchId, ["validating"], "in_progress");
  const recorded = await recordedLineNumbers(env.DB, batchId);
  const todo = valid.filter((l) => !recorded.has(l.line));
  await touch(env.DB, batchId);
  if (todo.length) await sendLines(env.BATCH_QUEUE, batchId, b.gen, todo);
  else await maybeFinalize(env, batchId);
}

/** Runs or skips one line; returns a retry delay in seconds, or null when the message is done. */
async function processLine(env: Env, appFetch: AppFetch, msg: LineMessage, attempts: number): Promise<number | null> {
  const b = await getBatch(env.DB, msg.batchId);
  // Superseded by a re-queue: that generation's copy of the line runs instead.
  if (!b || msg.gen < b.gen) return null;
  await touch(env.DB, b.id);
  if (await isRecorded(env.DB, b.id, msg.line)) {
    await maybeFinalize(env, b.id);
    return null;
  }
  const record = async (outcome: "completed" | "failed", result: string) => {
    await recordLine(env.DB, b.id, msg.line, outcome, result);
    await maybeFinalize(env, b.id);
    return null;
  };
  if (b.status === "cancelling" || b.status === "cancelled")
    return record(
      "failed",
      notRunLine(msg.customId, "batch_cancelled", "The batch was cancelled before this line ran."),
    );
  if (Date.now() > b.expires_at)
    return record(
      "failed",
      notRunLine(msg.customId, "batch_expired", "The batch's completion window ended before this line ran."),
    );
  if (attempts > LINE_GIVE_UP_ATTEMPTS)
    return record(
      "failed",
      notRunLine(msg.customId, "line_failed", `The line failed ${attempts - 1} times; it is not retried.`),
    );
  const account = await accountById(env.DB, b.key_id);
  if (!account) return record("failed", refusedLine(msg.customId, unauthorized("The batch's API key was revoked.")));

  const stop = new AbortController();
  const timer = setInterval(() => {
    getBatch(env.DB, b.id)
      .then((now) => {
        if (now?.status === "cancelling" || now?.status === "cancelled") stop.abort();
      })
      .catch(() => {}); // D1 unreachable: keep running; the next poll asks again
  }, CANCEL_POLL.ms);
  const heartbeat = setInterval(() => {
    touch(env.DB, b.id).catch(() => {}); // D1 unreachable: the next beat stamps it (staleMs spans several)
  }, REVIVE.heartbeatMs);
  try {
    const r = await runLine(appFetch, env, account, b, msg, stop.signal);
    if (r.kind === "retry") return r.delaySeconds;
    return await record(r.outcome, r.result);
  } finally {
    clearInterval(timer);
    clearInterval(heartbeat);
  }
}
