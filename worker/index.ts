/** Worker entry: the Hono app plus the Durable Object and queue consumer it needs. */
import { createApp } from "./app";

const app = createApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler;

export { KeyLimiter } from "./billing/key-limiter";
