/**
 * CORS for browser clients of the API (/v1/*, not the admin API), off by default. CORS_ORIGINS is a
 * comma-separated allow-list of exact origins ("https://app.example.com,http://localhost:3000"); "*"
 * allows any origin. Keys travel in the Authorization header, never cookies, so no credentials mode.
 * A preflight from an allowed origin is answered 204 before auth; anything else gets no CORS headers,
 * so the browser blocks it.
 */
import { cors } from "hono/cors";
import { factory, type AppEnv } from "../factory";
import type { MiddlewareHandler } from "hono";

const parsed = new Map<string, MiddlewareHandler<AppEnv> | null>();

function corsFor(origins: string | undefined): MiddlewareHandler<AppEnv> | null {
  const raw = origins?.trim() ?? "";
  let mw = parsed.get(raw);
  if (mw !== undefined) return mw;
  const list = raw
    .split(",")
    .map((o) => o.trim())
    .filter(Boolean);
  mw =
    list.length === 0
      ? null
      : cors({
          origin: (origin) => (list.includes("*") || list.includes(origin) ? origin : null),
          allowMethods: ["GET", "POST", "OPTIONS"],
          allowHeaders: ["authorization", "x-api-key", "content-type", "x-cache-ttl"],
          exposeHeaders: [
            "x-request-id",
            "x-cache",
            "retry-after",
            "retry-after-ms",
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
          ],
          maxAge: 600,
        });
  parsed.set(raw, mw);
  return mw;
}

export const apiCors = factory.createMiddleware(async (c, next) => {
  const mw = c.req.path.startsWith("/v1/admin") ? null : corsFor(c.env.CORS_ORIGINS);
  return mw ? mw(c, next) : next();
});
