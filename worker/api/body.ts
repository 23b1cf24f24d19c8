/**
 * Request bodies for every route: JSON reading and the one zod failure -> 400 mapping, so every
 * endpoint (chat, embeddings, tokenize, admin) names a bad field the same way: `param` is the path in
 * chat's style (`messages[2].content`, `input[0][1]`), and the message says "is required" only when the
 * field is absent (a present but wrong-typed field "is invalid").
 */
import type { z } from "zod";
import { ApiError, badRequest } from "../errors";

/** Reads the JSON body; a body that is not JSON is a 400, not a 500. */
export async function readJson(req: Request): Promise<unknown> {
  try {
    return await req.json();
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
  const what = issue.code === "invalid_type" && issue.input === undefined ? "is required" : `is invalid: ${issue.message}`;
  return badRequest(param ? `'${param}' ${what}.` : `The request body ${what}.`, param || null);
}

/** Parses `body` with `schema` or throws invalidBody's 400; a body that is not a JSON object is a 400 too. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw badRequest("The request body must be a JSON object.");
  const parsed = schema.safeParse(body, { reportInput: true });
  if (!parsed.success) throw invalidBody(parsed.error);
  return parsed.data;
}

/** readJson + parseBody. */
export async function readBody<T>(req: Request, schema: z.ZodType<T>): Promise<T> {
  return parseBody(schema, await readJson(req));
}
