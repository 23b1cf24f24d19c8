/**
 * HTTP client for one backend replica (contract/wire.ts). Errors carry whether another replica may
 * succeed; their messages stay in logs and never reach API users (they can name backend URLs).
 */
import {
  BACKEND_AUTH_HEADER,
  WIRE_VERSION,
  WIRE_VERSION_HEADER,
  WIRE_VERSION_UNSUPPORTED,
  parseGenerateEvent,
  type CancelRequest,
  type CancelResponse,
  type EmbedRequest,
  type EmbedResponse,
  type EmbedStoppedBody,
  type GenerateEvent,
  type GenerateRequest,
} from "../../contract/wire";
import { watchdog } from "./watchdog";
import { BACKEND_PATHS } from "../../contract/routes";

export class BackendError extends Error {
  constructor(
    message: string,
    /** True when another replica (or a later try) may succeed: network errors, 408/429/5xx. */
    readonly retryable: boolean,
    /** "wire_version": the replica does not speak this edge's contract version (a deploy mismatch). */
    readonly kind?: "wire_version",
  ) {
    super(message);
  }
}

function headers(token: string | undefined): HeadersInit {
  const h: Record<string, string> = { "content-type": "application/json", [WIRE_VERSION_HEADER]: String(WIRE_VERSION) };
  if (token) h[BACKEND_AUTH_HEADER] = `Bearer ${token}`;
  return h;
}

/**
 * A replica that accepts the connection but never answers would hang the request: the backend sends
 * its response headers as soon as a request is admitted, so waiting longer than this means trouble.
 * Only the headers are timed here: the body's silences have their own bounds (serving/watchdog.ts).
 * The default; /v1/generate uses ReplicaTimeouts.headersMs (serving/timeouts.ts).
 */
export const HEADERS_TIMEOUT_MS = 15_000;

/** `headersTimeoutMs` null: no header timer (an embed answers only when done; see routes/embeddings.ts). */
async function post(
  url: string,
  token: string | undefined,
  body: unknown,
  signal: AbortSignal,
  headersTimeoutMs: number | null = HEADERS_TIMEOUT_MS,
): Promise<Response> {
  const ac = new AbortController();
  const follow = () => ac.abort();
  if (signal.aborted) ac.abort();
  signal.addEventListener("abort", follow, { once: true });
  let timedOut = false;
  const disarm =
    headersTimeoutMs === null
      ? undefined
      : watchdog.arm("headers", headersTimeoutMs, () => {
          timedOut = true;
          ac.abort();
        });
  let res: Response;
  try {
    res = await fetch(url, { method: "POST", headers: headers(token), body: JSON.stringify(body), signal: ac.signal });
  } catch (err) {
    signal.removeEventListener("abort", follow);
    if (signal.aborted) throw err;
    throw new BackendError(
      timedOut
        ? `no response headers within ${headersTimeoutMs} ms`
        : `fetch failed: ${err instanceof Error ? err.message : String(err)}`,
      true,
    );
  } finally {
    disarm?.();
  }
  if (!res.ok) {
    signal.removeEventListener("abort", follow);
    const full = await res.text().catch(() => "");
    if (res.status === 409) {
      // An embed stopped by POST /v1/cancel: what the replica computed before it stopped is billable.
      const computed = stoppedUsage(full);
      if (computed !== null) throw new EmbedStopped(computed);
    }
    const detail = full.slice(0, 300);
    if (res.status === 400 && detail.includes(`"${WIRE_VERSION_UNSUPPORTED}"`))
      throw new BackendError(`HTTP 400: ${detail}`, false, "wire_version");
    throw new BackendError(
      `HTTP ${res.status}: ${detail}`,
      res.status >= 500 || res.status === 429 || res.status === 408,
    );
  }
  return res;
}

/** POST /v1/generate; resolves once the backend accepted the request (status 2xx). */
export async function openGenerate(
  base: string,
  token: string | undefined,
  req: GenerateRequest,
  signal: AbortSignal,
  headersTimeoutMs: number = HEADERS_TIMEOUT_MS,
): Promise<AsyncGenerator<GenerateEvent>> {
  const res = await post(`${base}${BACKEND_PATHS.generate}`, token, req, signal, headersTimeoutMs);
  if (!res.body) throw new BackendError("generate response has no body", true);
  return readEvents(res.body);
}

/** Parses an NDJSON body into events; a stream that breaks mid-way throws BackendError. */
export async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<GenerateEvent> {
  // One reader on the body itself, decoded here: no pipe in between whose failure needs handling of its own
  // when the connection drops (a killed replica, a cancel).
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw new BackendError(`generate stream broke: ${err instanceof Error ? err.message : String(err)}`, true);
      }
      if (chunk.done) break;
      buf += decoder.decode(chunk.value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) yield parseLine(line);
      }
    }
    buf += decoder.decode();
    if (buf.trim()) yield parseLine(buf.trim());
  } finally {
    // Cancelling the reader closes the connection: the backend sees the disconnect and stops.
    reader.cancel().catch(() => {});
  }
}

function parseLine(line: string): GenerateEvent {
  try {
    return parseGenerateEvent(line);
  } catch {
    throw new BackendError("malformed generate event", true);
  }
}

/** A cancel is one small JSON round trip; past this the drain deadline (generation.ts) still bounds the request. */
export const CANCEL_TIMEOUT_MS = 2_000;

/**
 * POST /v1/cancel: asks the replica to stop generating `requestId`; its open generate stream then ends with
 * a `done` event carrying the exact usage. Resolves to whether the replica knew the id; never throws.
 */
export async function cancelGenerate(base: string, token: string | undefined, requestId: string): Promise<boolean> {
  const body: CancelRequest = { request_id: requestId };
  try {
    const res = await fetch(`${base}${BACKEND_PATHS.cancel}`, {
      method: "POST",
      headers: headers(token),
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(CANCEL_TIMEOUT_MS),
    });
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      return false;
    }
    return ((await res.json()) as CancelResponse).cancelled === true;
  } catch {
    return false;
  }
}

/** POST /v1/embed answered 409: the replica stopped on POST /v1/cancel after computing `computedTokens`. */
export class EmbedStopped extends Error {
  constructor(readonly computedTokens: number) {
    super(`embed stopped after ${computedTokens} tokens`);
  }
}

function stoppedUsage(body: string): number | null {
  try {
    const n = (JSON.parse(body) as Partial<EmbedStoppedBody>).usage?.prompt_tokens;
    return typeof n === "number" && Number.isSafeInteger(n) && n >= 0 ? n : null;
  } catch {
    return null;
  }
}

/**
 * POST /v1/embed. Throws EmbedStopped when POST /v1/cancel stopped it. No header timer: the replica
 * answers only once every input is computed, so the caller bounds it with a deadline and a cancel.
 */
export async function embed(
  base: string,
  token: string | undefined,
  req: EmbedRequest,
  signal: AbortSignal,
): Promise<EmbedResponse> {
  const res = await post(`${base}${BACKEND_PATHS.embed}`, token, req, signal, null);
  try {
    return (await res.json()) as EmbedResponse;
  } catch {
    throw new BackendError("malformed embed response", true);
  }
}
