/**
 * Calls the worker's fetch handler in-process with test tiers (fake replica hosts) and a real key
 * in the real (miniflare) D1, so routing, retries and settlement run exactly as deployed.
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import worker from "../../worker/index";
import { createKey } from "../../worker/billing/keys";

export const PRICE = { input: 140000, cached_input: 14000, output: 420000 };

export function tiersJson(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    "mistral-tiny": {
      backends: ["http://r1.test", "http://r2.test", "http://r3.test"],
      backend_model: "tiny",
      context_window: 256,
      price: PRICE,
    },
    "mistral-small": { backends: ["http://r1.test"], backend_model: "small", context_window: 4096, price: PRICE },
    "mistral-embed": {
      backends: ["http://e1.test"],
      backend_model: "small",
      context_window: 64,
      kind: "embedding",
      price: { input: 100000, cached_input: 100000, output: 0 },
    },
    ...overrides,
  });
}

let n = 0;
export async function newKey(
  tiers = ["mistral-tiny", "mistral-small", "mistral-embed"],
): Promise<{ key: string; id: string }> {
  const key = `sk-test-${Date.now()}-${n++}-${"x".repeat(24)}`;
  const row = await createKey(env.DB, key, {
    name: "t",
    tiers,
    rpm: 10_000,
    tpm: 10_000_000,
    monthly_budget_micros: 1_000_000_000,
  });
  return { key, id: row.id };
}

export interface Called {
  res: Response;
  /** The body as text, after which all waitUntil work (settle, cache put) has finished. */
  text(): Promise<string>;
  json<T = Record<string, any>>(): Promise<T>;
  /** Resolves once all waitUntil work has finished (for a body the test reads itself). */
  settled(): Promise<void>;
}

/** `vars`: extra or replaced vars for this request (e.g. STALL_TIMEOUT_MS), as wrangler.toml would set them. */
export async function call(
  path: string,
  init: RequestInit & { key?: string; tiers?: string; vars?: Record<string, string> } = {},
): Promise<Called> {
  const ctx = createExecutionContext();
  const headers = new Headers(init.headers);
  if (init.key) headers.set("authorization", `Bearer ${init.key}`);
  if (init.body && !headers.has("content-type")) headers.set("content-type", "application/json");
  const req = new Request(`https://edge.test${path}`, { ...init, headers });
  const res = await worker.fetch(req, { ...env, ...init.vars, TIERS: init.tiers ?? tiersJson() }, ctx);
  let body: Promise<string> | undefined;
  const text = () => (body ??= res.text().then(async (t) => (await waitOnExecutionContext(ctx), t)));
  return { res, text, json: async () => JSON.parse(await text()), settled: () => waitOnExecutionContext(ctx) };
}

export const chat = (
  key: string,
  body: Record<string, unknown>,
  extra: RequestInit & { tiers?: string; vars?: Record<string, string> } = {},
) =>
  call("/v1/chat/completions", {
    method: "POST",
    key,
    body: JSON.stringify({ model: "mistral-tiny", messages: [{ role: "user", content: "Hi there" }], ...body }),
    ...extra,
  });

/** Parses an SSE body into its data payloads ("[DONE]" kept as a string). */
export function sseEvents(text: string): unknown[] {
  return text
    .split("\n\n")
    .filter((f) => f.startsWith("data: "))
    .map((f) => f.slice(6))
    .map((d) => (d === "[DONE]" ? d : JSON.parse(d)));
}

export async function usageRecord(requestId: string) {
  return env.DB.prepare("SELECT * FROM usage_records WHERE request_id = ?")
    .bind(requestId)
    .first<Record<string, any>>();
}
