/** Worker entry: the Hono app plus the Durable Object and queue consumer it needs. */
import { createApp } from "./app";
import type { Env } from "./env";
import { consumeUsage } from "./billing/ledger-queue";
import { consumeDeadLetters } from "./billing/dead-letters";
import { consumeBatch } from "./batch/consumer";

const app = createApp();

export default {
  fetch: app.fetch,
  // USAGE_QUEUE consumer: replays usage writes that settle() could not complete inline.
  // Its dead-letter queue (wrangler.toml) parks what still fails after max_retries (billing/dead-letters.ts).
  // BATCH_QUEUE consumer: validates batches and runs their lines through this same app (worker/batch/).
  queue: (batch, env) =>
    batch.queue.startsWith("moe-edge-batch")
      ? consumeBatch(batch, env, app.fetch)
      : batch.queue.endsWith("-dlq")
        ? consumeDeadLetters(batch, env)
        : consumeUsage(batch, env),
} satisfies ExportedHandler<Env>;

export { KeyLimiter } from "./billing/key-limiter";
export { ReplicaRegistry } from "./registry/replica-registry";
