/**
 * The public API's response bodies are zod schemas, declared once in contract/api-*.ts and imported by
 * everyone that writes or reads them: the worker's handlers (their types are these schemas' outputs), the
 * OpenAPI document (worker/routes/openapi.ts) and the console's browser code (type-only imports, so
 * nothing of zod reaches its bundle). Each schema is exported with a type of the same name, its output.
 * This file holds the pieces they share and the error body; request bodies are the schemas that validate
 * them, exported by the worker's routes.
 */
import { z } from "zod";

export const count = z.number().int().min(0);
export const epochMs = z.number().int().min(0).describe("Unix time in milliseconds.");
export const epochS = z.number().int().min(0).describe("Unix time in seconds.");

/** A plain list (`{object: "list", data}`). */
export const list = <T extends z.ZodType>(item: T) => z.object({ object: z.literal("list"), data: z.array(item) });

/** A page of a list read with `after` and `limit` (OpenAI's shape). */
export const listPage = <T extends z.ZodType>(item: T) =>
  z.object({
    object: z.literal("list"),
    data: z.array(item),
    first_id: z.string().nullable(),
    last_id: z.string().nullable(),
    has_more: z.boolean().describe("Ask again with `after` = `last_id` for the next page."),
  });

export const ErrorType = z.enum([
  "invalid_request_error",
  "authentication_error",
  "permission_error",
  "not_found_error",
  "rate_limit_error",
  "insufficient_quota",
  "api_error",
  "service_unavailable",
  // A known OpenAI/Mistral endpoint this API does not serve.
  "not_supported",
]);
export type ErrorType = z.output<typeof ErrorType>;

export const ErrorResponse = z
  .object({
    error: z.object({
      message: z.string(),
      type: ErrorType,
      param: z.string().nullable().describe("The request field at fault, e.g. `messages[0].role`."),
      code: z.string().nullable(),
    }),
  })
  .describe("Every error, in the OpenAI/Mistral shape.");
export type ErrorResponse = z.output<typeof ErrorResponse>;

export const Health = z.object({ status: z.literal("ok") });
export type Health = z.output<typeof Health>;
