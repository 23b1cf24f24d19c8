/** HTTP helpers of the backend's server: the error shape, bearer auth, JSON body validation, in-flight registry. */
import { timingSafeEqual } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { HTTPException } from "hono/http-exception";
import { validator } from "hono/validator";
import type { z } from "zod";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { BackendErrorBody } from "../../contract/wire";

/** OpenAI's error `type` for each status the backend answers. */
function errorType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "api_error";
  return "invalid_request_error";
}

/** Every non-2xx answer: {error: {message, type, param, code}} (the OpenAI shape), never internals. */
export function err(
  c: Context,
  status: ContentfulStatusCode,
  code: string,
  message: string,
  opts: { headers?: Record<string, string>; param?: string | null } = {},
): Response {
  for (const [k, v] of Object.entries(opts.headers ?? {})) c.header(k, v);
  return c.json<BackendErrorBody>(
    { error: { message, type: errorType(status), param: opts.param ?? null, code } },
    status,
  );
}

/** Constant-time token comparison (equal-length buffers, so the time leaks neither length nor prefix). */
export function tokensEqual(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length ? timingSafeEqual(a, b) : (timingSafeEqual(b, b), false);
}

/**
 * Bearer auth (Hono's bearerAuth) against `token()`, read per request; an unset token leaves the route
 * open. Every refusal, a malformed header included, is a 401 in the error shape.
 */
export function bearer(token: () => string | undefined, what: string): MiddlewareHandler {
  const refuse = { message: (c: Context) => err(c, 401, "unauthorized", `missing or invalid ${what} token`) };
  const auth = bearerAuth({
    verifyToken: (given) => tokensEqual(given, token() ?? ""),
    noAuthenticationHeader: refuse,
    invalidAuthenticationHeader: refuse,
    invalidToken: refuse,
  });
  return (c, next) => (token() === undefined ? next() : auth(c, next));
}

/**
 * Hono's JSON validator with a zod schema: the handler reads `c.req.valid("json")`, already parsed.
 * A failed parse is a 400 invalid_request naming the first issue's path; a body that is not JSON is
 * an HTTPException that onError answers as invalid_json (httpExceptionResponse below).
 */
export const jsonBody = <S extends z.ZodType>(schema: S) =>
  validator("json", (value, c): z.output<S> | Response => {
    const parsed = schema.safeParse(value);
    return parsed.success ? parsed.data : invalid(c, parsed.error.issues);
  });

/** An HTTPException's answer: bearerAuth's own 401, or the validator's malformed-JSON 400 in the error shape; null for other errors. */
export function httpExceptionResponse(e: Error, c: Context): Response | null {
  if (!(e instanceof HTTPException)) return null;
  // bearerAuth's refusals carry their response; the validator's bare 400 is the malformed body.
  return e.res === undefined && e.status === 400
    ? err(c, 400, "invalid_json", "request body is not valid JSON")
    : e.getResponse();
}

type Issue = { path: PropertyKey[]; message: string };

/** A zod failure as a 400: the first issues in the message, the first issue's path as `param`. */
export function invalid(c: Context, issues: ReadonlyArray<Issue>): Response {
  const msg = issues
    .slice(0, 3)
    .map((i) => `${i.path.map(String).join(".") || "body"}: ${i.message}`)
    .join("; ");
  const first = issues[0]?.path.map(String).join(".");
  return err(c, 400, "invalid_request", msg, { param: first || null });
}

/**
 * In-flight work by request_id, for POST /v1/cancel. A set per id: ids come from the edge and are
 * unique there, but the backend does not rely on it (a duplicate must not unhook the other request).
 */
export class InFlight {
  private readonly byId = new Map<string, Set<() => void>>();
  add(id: string, cancel: () => void): () => void {
    let set = this.byId.get(id);
    if (!set) this.byId.set(id, (set = new Set()));
    set.add(cancel);
    return () => {
      set.delete(cancel);
      if (set.size === 0 && this.byId.get(id) === set) this.byId.delete(id);
    };
  }
  /** Requests that can be cancelled right now (a /metrics gauge). */
  get size(): number {
    let n = 0;
    for (const set of this.byId.values()) n += set.size;
    return n;
  }
  has(id: string): boolean {
    return this.byId.has(id);
  }
  cancel(id: string): boolean {
    const set = this.byId.get(id);
    if (!set) return false;
    for (const c of [...set]) c();
    return true;
  }
}
