/** HTTP helpers of the backend's server: the error shape, bearer check, JSON body, in-flight registry. */
import { timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
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

export function tokenOk(header: string | undefined, token: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? "");
  if (!m) return false;
  const a = Buffer.from(m[1]!);
  const b = Buffer.from(token);
  // Compare equal-length buffers so the comparison time does not leak the token's length or prefix.
  return a.length === b.length ? timingSafeEqual(a, b) : (timingSafeEqual(b, b), false);
}

export async function readJson(c: Context): Promise<{ ok: true; body: unknown } | { ok: false }> {
  try {
    return { ok: true, body: await c.req.json() };
  } catch {
    return { ok: false };
  }
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
