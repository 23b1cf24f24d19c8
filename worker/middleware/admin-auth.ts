/**
 * Admin API auth: `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time (both sides
 * hashed to equal-length digests first). Wrong or missing token -> 401. With ADMIN_TOKEN unset the
 * admin API does not exist: 404, as for any unknown URL.
 */
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app";
import { notFound, unauthorized } from "../errors";

async function digest(s: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest("SHA-256", new TextEncoder().encode(s));
}

export async function tokensEqual(presented: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all([digest(presented), digest(expected)]);
  return crypto.subtle.timingSafeEqual(a, b);
}

export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  const expected = c.env.ADMIN_TOKEN;
  if (!expected) throw notFound("Unknown endpoint.", "unknown_url");
  const m = c.req.header("authorization")?.match(/^Bearer\s+(\S+)\s*$/i);
  if (!m || !(await tokensEqual(m[1], expected))) throw unauthorized("Invalid or missing admin token.");
  await next();
};
