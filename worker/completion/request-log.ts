/** One structured JSON log line per API request. Prompts only with LOG_PROMPTS=1. */
export interface RequestLog {
  request_id: string;
  key_id: string | null;
  endpoint: "chat" | "embeddings";
  model: string | null;
  stream?: boolean;
  status: number;
  finish_reason?: string;
  prompt_tokens?: number;
  cached_tokens?: number;
  completion_tokens?: number;
  latency_ms: number;
  ttft_ms?: number | null;
  replica?: string;
  attempts?: number;
  cache?: "HIT" | "MISS" | "BYPASS";
  /** Budget slices reserved after admission, and whether a refused one ended the generation. */
  budget_top_ups?: number;
  budget_exhausted?: boolean;
  error?: string;
  failures?: { replica: string; error: string }[];
  prompt?: unknown;
}

export function logRequest(entry: RequestLog): void {
  console.log(JSON.stringify({ level: entry.status >= 500 ? "error" : "info", msg: "request", ...entry }));
}
