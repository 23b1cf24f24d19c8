/**
 * API-key auth for the /v1/* API routes. Accepts `Authorization: Bearer <key>` or `x-api-key`.
 * Missing, unknown or revoked keys get 401 authentication_error; the body never echoes the key.
 * Sets c.var.account (plan read from D1, cached <= 3 s per isolate: see billing/keys.ts).
 */
import type { MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import type { AppEnv } from "../app";
import { lookupAccount } from "../billing/keys";
import { unauthorized } from "../errors";

const MAX_KEY_LENGTH = 256;

export function presentedKey(authorization: string | undefined, apiKeyHeader: string | undefined): string | null {
  const m = authorization?.match(/^Bearer\s+(\S+)\s*$/i);
  const key = m?.[1] ?? apiKeyHeader?.trim();
  return key && key.length <= MAX_KEY_LENGTH ? key : null;
}

export const requireApiKey: MiddlewareHandler<AppEnv> = async (c, next) => {
  const key = presentedKey(c.req.header("authorization"), c.req.header("x-api-key"));
  if (!key) throw unauthorized();
  const account = await lookupAccount(c.env.DB, key);
  if (!account) throw unauthorized();
  c.set("account", account);
  await next();
};

/**
 * Auth for everything under /v1/ except the admin API (which has its own token). Paths that match
 * no route fall through to the 404 unauthenticated, so unknown URLs stay 404s; every real route
 * mounted under /v1 — now or later — is authenticated by default.
 */
export const apiAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.path.startsWith("/v1/admin/") || c.req.path === "/v1/admin") return next();
  if (!matchedRoutes(c).some((r) => r.method !== "ALL")) return next();
  return requireApiKey(c, next);
};
