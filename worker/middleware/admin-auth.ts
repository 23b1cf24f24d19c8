/**
 * Admin API auth: `Authorization: Bearer <ADMIN_TOKEN>`, on Hono's bearerAuth with `verifyToken`,
 * compared in constant time (both sides hashed to equal-length digests first). Wrong, malformed or
 * missing token -> 401. With ADMIN_TOKEN unset the admin API does not exist: 404, as for any unknown URL
 * (a set but short one never gets here: config.ts's rule refuses every request, middleware/config-guard.ts). Failed attempts are
 * throttled per client, in the admin token's own bucket (middleware/auth-throttle.ts).
 */
import { bearerAuth } from "hono/bearer-auth";
import { notFound, unauthorized } from "../errors";
import { factory, type AppEnv } from "../factory";
import { refusedWith } from "./auth";
import { clientOf, throttled } from "./auth-throttle";

/** The admin token in force, or null when unset (its length is config.ts's rule, checked before any route). */
export function adminToken(value: string | undefined): string | null {
  return value ? value : null;
}

async function digest(s: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest("SHA-256", new TextEncoder().encode(s));
}

export async function tokensEqual(presented: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all([digest(presented), digest(expected)]);
  return crypto.subtle.timingSafeEqual(a, b);
}

const byAdminToken = bearerAuth<AppEnv>({
  verifyToken: (token, c) => tokensEqual(token, c.env.ADMIN_TOKEN ?? ""),
  ...refusedWith(() => unauthorized("Invalid or missing admin token.")),
});

export const requireAdmin = factory.createMiddleware(async (c, next) => {
  if (!adminToken(c.env.ADMIN_TOKEN)) throw notFound("Unknown endpoint.", "unknown_url");
  return throttled("admin", clientOf(c.req.header("cf-connecting-ip")), () => byAdminToken(c, next));
});
