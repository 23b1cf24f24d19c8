/** Worker entry: the Hono app plus the Durable Object and queue consumer it needs. */
import { createApp } from "./app";
import type { Env } from "./env";
import { consumeUsage } from "./billing/usage-queue";

const app = createApp();

export default {
  fetch: app.fetch,
  // USAGE_QUEUE consumer: replays usage writes that settle() could not complete inline.
  queue: (batch, env) => consumeUsage(batch, env),
} satisfies ExportedHandler<Env>;

export { KeyLimiter } from "./billing/key-limiter";
