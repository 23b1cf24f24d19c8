/**
 * Calls to the worker's own API, same origin, with the secret as a Bearer header (never in a URL).
 * Failures become ApiFailure with the API's own message, and errorText() adds what a person needs next:
 * the retry time of a 429, the monthly budget.
 */
import type { ErrorResponse } from "../../../contract/api-common";

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string | null = null,
    readonly code: string | null = null,
    readonly retryAfterS: number | null = null,
  ) {
    super(message);
  }
}

/** The API's error body (contract/api-common.ts), read warily: a proxy in between may answer anything. */
type ErrorEnvelope = { error?: Partial<Record<keyof ErrorResponse["error"], unknown>> };

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);

/** Seconds to wait from retry-after-ms (preferred, exact) or Retry-After. */
export function retryAfterSeconds(headers: Headers): number | null {
  const ms = Number(headers.get("retry-after-ms"));
  if (headers.has("retry-after-ms") && Number.isFinite(ms)) return Math.max(1, Math.ceil(ms / 1000));
  const s = Number(headers.get("retry-after"));
  return headers.has("retry-after") && Number.isFinite(s) ? Math.max(1, Math.ceil(s)) : null;
}

export async function failureFrom(res: Response): Promise<ApiFailure> {
  let body: ErrorEnvelope = {};
  try {
    body = (await res.json()) as ErrorEnvelope;
  } catch {
    // not JSON: fall back to the status line
  }
  const e = body.error ?? {};
  const message = str(e.message) ?? `The API answered HTTP ${res.status}.`;
  return new ApiFailure(
    res.status,
    message,
    str(e.type),
    str(e.code),
    res.status === 429 ? retryAfterSeconds(res.headers) : null,
  );
}

/** A sentence for a person: the API's message plus what to do about it. */
export function errorText(err: unknown): string {
  if (err instanceof ApiFailure) {
    if (err.code === "insufficient_quota" || err.type === "insufficient_quota")
      return `${err.message} The monthly budget is used up until it resets (see Overview).`;
    if (err.status === 429)
      return err.retryAfterS !== null ? `${err.message} Retry in ${err.retryAfterS} s.` : err.message;
    return err.message;
  }
  if (err instanceof DOMException && err.name === "AbortError") return "Cancelled.";
  if (err instanceof TypeError) return "Network error: the API could not be reached.";
  return err instanceof Error ? err.message : String(err);
}

export interface Api {
  get<T>(path: string): Promise<T>;
  send<T>(method: "POST" | "PATCH" | "DELETE", path: string, body?: unknown): Promise<T>;
  /** The raw response (for streaming); throws ApiFailure when not ok. */
  raw(path: string, init: { method: string; body?: string; signal?: AbortSignal }): Promise<Response>;
}

export function apiClient(secret: string): Api {
  const headers = (json: boolean): Record<string, string> => ({
    authorization: `Bearer ${secret}`,
    ...(json ? { "content-type": "application/json" } : {}),
  });
  const raw = async (
    path: string,
    init: { method: string; body?: string; signal?: AbortSignal },
  ): Promise<Response> => {
    const res = await fetch(path, {
      ...init,
      headers: headers(init.body !== undefined),
      cache: "no-store",
      credentials: "omit",
    });
    if (!res.ok) throw await failureFrom(res);
    return res;
  };
  return {
    raw,
    async get<T>(path: string): Promise<T> {
      return (await (await raw(path, { method: "GET" })).json()) as T;
    },
    async send<T>(method: "POST" | "PATCH" | "DELETE", path: string, body?: unknown): Promise<T> {
      const res = await raw(path, { method, body: body === undefined ? undefined : JSON.stringify(body) });
      return (await res.json()) as T;
    },
  };
}
