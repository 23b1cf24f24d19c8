/**
 * Endpoints the OpenAI and Mistral clients know that this API does not serve: a 404 with type
 * `not_supported`, naming the endpoint, what to use instead when there is something, and where the
 * supported ones are listed. Registered for every method (no key needed, like any 404), so an unknown
 * path under one of these prefixes says "not supported" too; paths outside them keep "Unknown endpoint".
 * /v1/files, /v1/batches and /v1/batch/jobs are not listed: they are served (batch API).
 */
import { ApiError } from "../errors";
import { factory } from "../factory";

/** Prefix (under /v1) -> what the endpoint is, and what to use instead (null: nothing here does it). */
export const UNSUPPORTED: ReadonlyArray<{ path: string; what: string; instead: string | null }> = [
  { path: "/completions", what: "legacy text completions", instead: "POST /v1/chat/completions" },
  { path: "/fim/completions", what: "fill-in-the-middle completions", instead: null },
  { path: "/moderations", what: "moderation", instead: null },
  { path: "/chat/moderations", what: "moderation", instead: null },
  { path: "/classifications", what: "classification", instead: null },
  { path: "/chat/classifications", what: "classification", instead: null },
  { path: "/agents", what: "agents", instead: "POST /v1/chat/completions" },
  { path: "/conversations", what: "conversations", instead: "POST /v1/chat/completions" },
  { path: "/assistants", what: "assistants", instead: "POST /v1/chat/completions" },
  { path: "/threads", what: "assistants threads", instead: "POST /v1/chat/completions" },
  { path: "/responses", what: "the Responses API", instead: "POST /v1/chat/completions" },
  { path: "/realtime", what: "realtime sessions", instead: null },
  { path: "/audio", what: "audio (speech, transcriptions, translations)", instead: null },
  { path: "/images", what: "image generation", instead: null },
  { path: "/ocr", what: "OCR", instead: null },
  { path: "/fine_tuning", what: "fine-tuning", instead: null },
  { path: "/fine-tuning", what: "fine-tuning", instead: null },
  { path: "/vector_stores", what: "vector stores", instead: null },
  { path: "/libraries", what: "document libraries", instead: null },
  { path: "/uploads", what: "uploads", instead: null },
  { path: "/evals", what: "evals", instead: null },
];

export const DOCS_PATH = "docs/api.md#unsupported-endpoints";

export function notSupported(method: string, path: string, origin: string): ApiError {
  const prefix = UNSUPPORTED.find((u) => path === `/v1${u.path}` || path.startsWith(`/v1${u.path}/`));
  const what = prefix ? ` (${prefix.what})` : "";
  const instead = prefix?.instead ? ` Use ${prefix.instead} instead.` : "";
  return new ApiError(
    404,
    `${method} ${path}${what} is not supported by this API.${instead} Supported endpoints: ${origin}/openapi.json (docs: ${DOCS_PATH}).`,
    "not_supported",
    "endpoint_not_supported",
  );
}

export const unsupportedRoutes = factory.createApp();
for (const u of UNSUPPORTED)
  for (const p of [u.path, `${u.path}/*`])
    unsupportedRoutes.all(p, (c) => {
      throw notSupported(c.req.method, c.req.path, new URL(c.req.url).origin);
    });
