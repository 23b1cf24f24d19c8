/** Worker entry: the Hono app plus the Durable Object and queue consumer it needs. */
import { createApp } from "./app";
import type { Env } from "./env";

const app = createApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;

export { KeyLimiter } from "./billing/key-limiter";
