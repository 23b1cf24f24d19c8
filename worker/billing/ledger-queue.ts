/**
 * USAGE_QUEUE consumer: replays the ledger insert and/or limiter charge that settle() could not
 * do inline. Both are idempotent on the request id, so redelivery never double-counts.
 */
import type { Env } from "../env";
import { insertUsage, isUsageRecord } from "./ledger";
import { limiterSettle, type UsageMessage } from "./meter";

export function isUsageMessage(v: unknown): v is UsageMessage {
  if (typeof v !== "object" || v === null) return false;
  const m = v as Record<string, unknown>;
  return m.v === 1 && typeof m.ledger === "boolean" && typeof m.limiter === "boolean" && isUsageRecord(m.record);
}

export async function consumeUsage(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const msg of batch.messages) {
    const body = msg.body;
    if (!isUsageMessage(body)) {
      console.error(
        JSON.stringify({ level: "error", where: "usage_queue", error: "malformed message dropped", id: msg.id }),
      );
      msg.ack();
      continue;
    }
    try {
      if (body.ledger) await insertUsage(env.DB, body.record);
      if (body.limiter) await limiterSettle(env, body.record);
      msg.ack();
    } catch (err) {
      console.error(
        JSON.stringify({ level: "error", where: "usage_queue", request_id: body.record.requestId, error: String(err) }),
      );
      msg.retry({ delaySeconds: Math.min(60, 2 ** msg.attempts) });
    }
  }
}
