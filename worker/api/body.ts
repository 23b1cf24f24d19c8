/**
 * Request bodies for every route: JSON reading and the one zod failure -> 400 mapping, so every
 * endpoint (chat, embeddings, tokenize, admin) names a bad field the same way: `param` is the path in
 * chat's style (`messages[2].content`, `input[0][1]`), and the message says "is required" only when the
 * field is absent (a present but wrong-typed field "is invalid").
 */
import type { z } from "zod";
import { ApiError, badRequest } from "../errors";

/**
 * Largest request body any route reads (1 MiB): well above the biggest legitimate one (a full context
 * window of chat, MAX_EMBED_TOKENS of embeddings as JSON ids, a detokenize list), and small enough that
 * parsing it costs milliseconds. Checked on Content-Length before reading, and again while reading.
 */
export const MAX_BODY_BYTES = 1 << 20;

export const bodyTooLarge = () =>
  new ApiError(
    413,
    `The request body is larger than ${MAX_BODY_BYTES} bytes.`,
    "invalid_request_error",
    "request_too_large",
  );

/** 413 when a declared Content-Length is over the cap (before a byte is read). */
export function checkContentLength(req: Request): void {
  const declared = req.headers.get("content-length");
  if (declared !== null && !(Number(declared) <= MAX_BODY_BYTES)) throw bodyTooLarge();
}

/** The body as text, at most MAX_BODY_BYTES (a chunked body without Content-Length is cut off too). */
export async function readCapped(req: Request): Promise<string> {
  checkContentLength(req);
  if (!req.body) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      void reader.cancel().catch(() => {});
      throw bodyTooLarge();
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

/** Reads the JSON body (capped); a body that is not JSON is a 400, not a 500. */
export async function readJson(req: Request): Promise<unknown> {
  const text = await readCapped(req);
  try {
    return JSON.parse(text);
  } catch {
    throw badRequest("The request body is not valid JSON.");
  }
}

/** `messages[2].content`-style path for `param`. */
export function paramOf(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}

/** The first issue of a failed parse as a 400 (parse with `{ reportInput: true }`: zod 4 leaves issue.input out otherwise). */
export function invalidBody(error: z.ZodError): ApiError {
  const issue = error.issues[0];
  const param = paramOf(issue.path);
  const what =
    issue.code === "invalid_type" && issue.input === undefined ? "is required" : `is invalid: ${issue.message}`;
  return badRequest(param ? `'${param}' ${what}.` : `The request body ${what}.`, param || null);
}

/** Parses `body` with `schema` or throws invalidBody's 400; a body that is not a JSON object is a 400 too. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw badRequest("The request body must be a JSON object.");
  const parsed = schema.safeParse(body, { reportInput: true });
  if (!parsed.success) throw invalidBody(parsed.error);
  return parsed.data;
}

/** readJson + parseBody. */
export async function readBody<T>(req: Request, schema: z.ZodType<T>): Promise<T> {
  return parseBody(schema, await readJson(req));
}
