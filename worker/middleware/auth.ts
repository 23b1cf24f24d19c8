/**
 * API-key auth for the /v1/* API routes, on Hono's bearerAuth with `verifyToken`: the key comes from
 * `Authorization: Bearer <key>` (the SDKs) or, failing that header, `x-api-key: <key>`. Missing,
 * malformed, unknown or revoked keys are all the same 401 authentication_error (the body never echoes
 * the key), thrown as bearerAuth's HTTPException and sent by the app's onError.
 * Keys not of the issued shape are refused before any lookup; failed attempts are throttled per
 * client, in the API keys' own bucket (middleware/auth-throttle.ts). Sets c.var.account (plan read from D1, cached <= 3 s per isolate: see billing/keys.ts).
 */
import type { Context } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { matchedRoutes } from "hono/route";
import { CUSTOM_KEY_RE, lookupAccount } from "../billing/keys";
import { unauthorized, type ApiError } from "../errors";
import { factory, type AppEnv } from "../factory";
import { clientOf, throttled } from "./auth-throttle";

/** bearerAuth's failure responses, in the OpenAI error shape; a malformed header is a 401 too, not a 400. */
export function refusedWith(error: () => ApiError) {
  const respond = () => {
    const e = error();
    return new Response(JSON.stringify(e.body()), {
      status: e.status,
      headers: { "content-type": "application/json" },
    });
  };
  return {
    noAuthenticationHeader: { message: respond },
    invalidAuthenticationHeader: { message: respond },
    invalidToken: { message: respond },
  };
}

async function verifyKey(key: string, c: Context<AppEnv>): Promise<boolean> {
  // Every key we issue or accept matches this (sk- + 64 hex does too): anything else is refused
  // before a SHA-256 or a D1 read.
  if (!CUSTOM_KEY_RE.test(key)) return false;
  const account = await lookupAccount(c.env.DB, key);
  if (!account) return false;
  c.set("account", account);
  return true;
}

const byBearer = bearerAuth<AppEnv>({ verifyToken: verifyKey, ...refusedWith(unauthorized) });
const byApiKeyHeader = bearerAuth<AppEnv>({
  headerName: "x-api-key",
  prefix: "",
  verifyToken: verifyKey,
  ...refusedWith(unauthorized),
});

export const requireApiKey = factory.createMiddleware((c, next) =>
  throttled("apiKey", clientOf(c.req.header("cf-connecting-ip")), () =>
    !c.req.header("authorization") && c.req.header("x-api-key") !== undefined
      ? byApiKeyHeader(c, next)
      : byBearer(c, next),
  ),
);

/**
 * Auth for everything under /v1/ except the admin API (which has its own token). Paths that match
 * no route fall through to the 404 unauthenticated, so unknown URLs stay 404s; every real route
 * mounted under /v1 — now or later — is authenticated by default.
 */
export const apiAuth = factory.createMiddleware(async (c, next) => {
  if (c.req.path.startsWith("/v1/admin/") || c.req.path === "/v1/admin") return next();
  if (!matchedRoutes(c).some((r) => r.method !== "ALL")) return next();
  return requireApiKey(c, next);
});
