/**
 * Validation of a batch's input file, line by line (OpenAI's rules): each non-blank line is a JSON object
 * `{custom_id, method: "POST", url: <the batch's endpoint>, body}` with a `custom_id` unique in the file
 * and a body the endpoint accepts. Bad lines are refused with the 400 body an interactive request gets
 * (chat bodies are parsed by the chat route's own parser); the rest run. The model, the key's plan and the
 * context window are checked when the line runs, by the endpoint itself.
 *
 * Mistral's lines are `{custom_id, body}`: the endpoint (and, when the job names one, the model) come
 * from the job. They are read as the OpenAI line they stand for, then checked the same way.
 */
import { z } from "zod";
import { parseBody } from "../api/body";
import { parseChatBody } from "../api/chat-request";
import { ApiError, badRequest } from "../errors";
import type { Batch, BatchEndpoint } from "../../contract/api-batch";
import type { LineFormat } from "./store";

export const MAX_CUSTOM_ID = 512;
/** `errors.data` of a failed batch lists at most this many lines. */
export const MAX_LISTED_ERRORS = 100;

export interface ValidLine {
  /** 1-based line number in the file. */
  line: number;
  customId: string;
  body: Record<string, unknown>;
}

export interface BadLine {
  line: number;
  customId: string | null;
  error: ApiError;
}

const LineSchema = z.object({
  custom_id: z.string().min(1).max(MAX_CUSTOM_ID),
  method: z.string(),
  url: z.string(),
  body: z.record(z.string(), z.unknown()),
});

const MistralLineSchema = z.object({
  custom_id: z.string().min(1).max(MAX_CUSTOM_ID),
  body: z.record(z.string(), z.unknown()),
});

/** How a batch reads its lines: their shape and, for a Mistral job naming one, the model of every line. */
export interface LineShape {
  format: LineFormat;
  model?: string | null;
}

/** The embeddings route parses the rest (input kinds, sizes) when the line runs. */
const EmbedLineBody = z.object({
  model: z.string().min(1).max(256),
  input: z.unknown().refine((v) => v !== undefined),
});

function checkBody(endpoint: BatchEndpoint, body: Record<string, unknown>): void {
  if (body.stream === true)
    throw badRequest("'body.stream' must not be true: batch answers are not streamed.", "body.stream");
  try {
    if (endpoint === "/v1/chat/completions") parseChatBody(body);
    else parseBody(EmbedLineBody, body);
  } catch (err) {
    // The route's own 400, with the field named inside the line's body.
    if (err instanceof ApiError)
      throw new ApiError(err.status, err.message, err.type, err.code, err.param ? `body.${err.param}` : "body");
    throw err;
  }
}

/** A parsed line in the OpenAI shape, or the zod issue's field. */
function parseLine(json: unknown, endpoint: BatchEndpoint, shape: LineShape) {
  if (shape.format === "openai") return LineSchema.safeParse(json);
  const m = MistralLineSchema.safeParse(json);
  if (!m.success) return m;
  const body = shape.model ? { ...m.data.body, model: shape.model } : m.data.body;
  return { success: true as const, data: { custom_id: m.data.custom_id, method: "POST", url: endpoint, body } };
}

export function validateInput(
  text: string,
  endpoint: BatchEndpoint,
  shape: LineShape = { format: "openai" },
): { valid: ValidLine[]; bad: BadLine[] } {
  const needs = shape.format === "openai" ? "custom_id, method, url and body" : "custom_id and body";
  const valid: ValidLine[] = [];
  const bad: BadLine[] = [];
  const seen = new Set<string>();
  text.split("\n").forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === "") return;
    let customId: string | null = null;
    try {
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch {
        throw badRequest(`Line ${line} is not valid JSON.`, null, "invalid_json_line");
      }
      if (typeof json === "object" && json !== null && typeof (json as { custom_id?: unknown }).custom_id === "string")
        customId = (json as { custom_id: string }).custom_id;
      const parsed = parseLine(json, endpoint, shape);
      if (!parsed.success) {
        const field = String(parsed.error.issues[0]?.path[0] ?? "line");
        throw badRequest(
          `Line ${line}: '${field}' is missing or invalid (each line needs ${needs}).`,
          field,
          "invalid_line",
        );
      }
      const l = parsed.data;
      if (seen.has(l.custom_id)) {
        customId = null; // the id belongs to the earlier line
        throw badRequest(
          `Line ${line}: custom_id '${l.custom_id}' is not unique in the file.`,
          "custom_id",
          "duplicate_custom_id",
        );
      }
      seen.add(l.custom_id);
      if (l.method !== "POST") throw badRequest(`Line ${line}: method must be POST.`, "method", "invalid_method");
      if (l.url !== endpoint)
        throw badRequest(`Line ${line}: url must be the batch's endpoint, ${endpoint}.`, "url", "mismatched_url");
      checkBody(endpoint, l.body);
      valid.push({ line, customId: l.custom_id, body: l.body });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      bad.push({ line, customId, error: err });
    }
  });
  return { valid, bad };
}

/** A failed batch's `errors`: what was wrong with (at most MAX_LISTED_ERRORS of) its lines. */
export function batchErrors(bad: readonly BadLine[]): NonNullable<Batch["errors"]> {
  return {
    object: "list",
    data: bad.slice(0, MAX_LISTED_ERRORS).map((b) => ({
      code: b.error.code ?? "invalid_request",
      message: b.error.message,
      param: b.error.param,
      line: b.line,
    })),
  };
}
