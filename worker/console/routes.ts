/**
 * The console, served by the worker itself (mounted at /console):
 *   GET /console                      the key holder's console (sign in with an API key)
 *   GET /console/admin                the operator's console; 404 when ADMIN_TOKEN is unset, like the admin API
 *   GET /console/assets/console.<version>.{js,css}   the bundle (immutable: the version is its content hash)
 * The pages hold no secrets: they call the public API from the browser with the secret as a Bearer
 * header. Every response carries a strict CSP (scripts and styles from this origin only, no framing,
 * Trusted Types with no policy, so no string can ever reach an HTML sink).
 */
import { Hono, type MiddlewareHandler } from "hono";
import type { AppEnv } from "../factory";
import { notFound } from "../errors";
import { adminToken } from "../middleware/admin-auth";
import { getTiers } from "../config/tiers";
import { CONSOLE_CSS, CONSOLE_JS } from "./assets.generated";
import { consolePage, CSS_PATH, JS_PATH } from "./pages";

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join("; ");

const securityHeaders: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  const h = c.res.headers;
  h.set("content-security-policy", CONSOLE_CSP);
  h.set("x-content-type-options", "nosniff");
  h.set("x-frame-options", "DENY");
  h.set("referrer-policy", "no-referrer");
  h.set("cross-origin-opener-policy", "same-origin");
  h.set("cross-origin-resource-policy", "same-origin");
  h.set("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()");
};

const page = (body: string) =>
  new Response(body, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } });

const asset = (body: string, type: string) =>
  new Response(body, { headers: { "content-type": type, "cache-control": "public, max-age=31536000, immutable" } });

export const consoleRoutes = new Hono<AppEnv>();
consoleRoutes.use("*", securityHeaders);

consoleRoutes.get("/", () => page(consolePage("user")));
consoleRoutes.get("/admin", (c) => {
  if (!adminToken(c.env.ADMIN_TOKEN)) throw notFound("Unknown endpoint.", "unknown_url");
  const tiers = [...getTiers(c.env.TIERS).keys()];
  return page(consolePage("admin", tiers));
});
consoleRoutes.get(JS_PATH.slice("/console".length), () => asset(CONSOLE_JS, "text/javascript; charset=utf-8"));
consoleRoutes.get(CSS_PATH.slice("/console".length), () => asset(CONSOLE_CSS, "text/css; charset=utf-8"));
