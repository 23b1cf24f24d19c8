/**
 * Dead letters of USAGE_QUEUE. A usage message still failing after the consumer's
 * max_retries goes to the dead-letter queue (wrangler.toml `dead_letter_queue`), whose consumer parks it
 * in KV under `usage-dlq:<request id>:<message id>`: KV, not D1, since D1 failing is the usual reason a
 * record got here. Nothing is lost, and nothing is counted twice: replay does the same idempotent writes
 * as the consumer (one ledger row per request id, one limiter charge per id), then deletes the entry.
 *
 * Replay: POST /v1/admin/usage/dead-letters/replay (admin token) replays up to `limit` entries and
 * answers {replayed, failed, remaining}; call it until remaining is 0. GET .../dead-letters counts them.
 */
import type { DeadLetterReplay } from "../../contract/api-accounts";
import type { Env } from "../env";
import { insertUsage } from "./ledger";
import { limiterSettle, type UsageMessage } from "./meter";
import { isUsageMessage } from "./ledger-queue";

export const DLQ_PREFIX = "usage-dlq:";

export async function consumeDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const msg of batch.messages) {
    if (!isUsageMessage(msg.body)) {
      console.error(
        JSON.stringify({ level: "error", where: "usage_dlq", error: "malformed dead letter dropped", id: msg.id }),
      );
      msg.ack();
      continue;
    }
    try {
      await env.KV.put(`${DLQ_PREFIX}${msg.body.record.requestId}:${msg.id}`, JSON.stringify(msg.body));
      console.error(
        JSON.stringify({
          level: "error",
          where: "usage_dlq",
          msg: "usage record parked for replay",
          request_id: msg.body.record.requestId,
        }),
      );
      msg.ack();
    } catch (err) {
      console.error(
        JSON.stringify({
          level: "error",
          where: "usage_dlq",
          request_id: msg.body.record.requestId,
          error: String(err),
        }),
      );
      msg.retry({ delaySeconds: 60 });
    }
  }
}

/** What a replay did (contract/api-accounts.ts DeadLetterReplay, less its `object`). */
export type ReplayResult = Omit<DeadLetterReplay, "object">;

export async function countDeadLetters(env: Env): Promise<number> {
  let n = 0;
  let cursor: string | undefined;
  do {
    const page = await env.KV.list({ prefix: DLQ_PREFIX, cursor });
    n += page.keys.length;
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  return n;
}

export async function replayDeadLetters(env: Env, limit: number): Promise<ReplayResult> {
  const page = await env.KV.list({ prefix: DLQ_PREFIX, limit });
  let replayed = 0;
  let failed = 0;
  for (const { name } of page.keys) {
    const raw = await env.KV.get(name);
    const body: unknown = raw === null ? null : JSON.parse(raw);
    if (!isUsageMessage(body)) {
      await env.KV.delete(name);
      continue;
    }
    try {
      await replayOne(env, body);
      await env.KV.delete(name);
      replayed++;
    } catch (err) {
      failed++;
      console.error(
        JSON.stringify({
          level: "error",
          where: "usage_dlq_replay",
          request_id: body.record.requestId,
          error: String(err),
        }),
      );
    }
  }
  return { replayed, failed, remaining: await countDeadLetters(env) };
}

async function replayOne(env: Env, m: UsageMessage): Promise<void> {
  if (m.ledger) await insertUsage(env.DB, m.record);
  if (m.limiter) await limiterSettle(env, m.record);
}
