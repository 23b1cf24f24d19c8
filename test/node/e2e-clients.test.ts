/**
 * Real, unmodified clients (the `openai` and `@mistralai/mistralai` SDKs) against the real local stack:
 * npm start's launcher -> wrangler dev (miniflare: D1, DO, KV, Queues, Cache) -> backend process -> ONNX Runtime.
 */
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { resolve } from "node:path";
import { Mistral } from "@mistralai/mistralai";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Stack, useSharedStack } from "./helpers/stack";

let stack: Stack;
let openai: OpenAI;
let mistral: Mistral;
const messages = [{ role: "user" as const, content: "Tell me a short story about a lighthouse." }];

/** Polls until `fn` yields a value (a condition wait: no deadline of its own, the test's timeout bounds it). */
async function until<T>(fn: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  stack = await useSharedStack();
  openai = new OpenAI({ baseURL: `${stack.base}/v1`, apiKey: stack.apiKey, maxRetries: 0 });
  mistral = new Mistral({ apiKey: stack.apiKey, serverURL: stack.base });
}, 300_000);

afterAll(async () => {
  await stack?.stop();
});

describe("openai SDK", () => {
  it("chat, non-streaming", async () => {
    const r = await openai.chat.completions.create({
      model: "mistral-small",
      messages,
      max_tokens: 12,
      temperature: 0,
    });
    expect(r.choices[0].message.role).toBe("assistant");
    expect(typeof r.choices[0].message.content).toBe("string");
    expect(["stop", "length"]).toContain(r.choices[0].finish_reason);
    expect(r.usage?.prompt_tokens).toBeGreaterThan(5);
    expect(r.usage?.completion_tokens).toBeGreaterThan(0);
    expect(r.usage?.completion_tokens).toBeLessThanOrEqual(12);
  });

  it("chat, non-streaming and long: the early-committed 200 with keep-alive spaces parses as usual", async () => {
    // 500 tokens take well over the 0.5 s commit point here (seconds under wrangler dev), so the body starts with spaces.
    const { data: r, response } = await openai.chat.completions
      .create({ model: "mistral-small", messages, max_tokens: 500, temperature: 0 })
      .withResponse();
    expect(response.headers.get("content-encoding")).toBe("identity");
    expect(r.object).toBe("chat.completion");
    expect(r.usage?.completion_tokens).toBeGreaterThan(0);
    expect((r.usage as unknown as { cost_micros: number }).cost_micros).toBeGreaterThan(0);
    const m = await mistral.chat.complete({ model: "mistral-small", messages, maxTokens: 500, temperature: 0 });
    expect(m.choices?.[0].message?.content).toBe(r.choices[0].message.content);
  });

  it("chat, streaming with include_usage", async () => {
    const stream = await openai.chat.completions.create({
      model: "mistral-tiny",
      messages,
      max_tokens: 10,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage: OpenAI.CompletionUsage | undefined;
    let finish: string | null = null;
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        text += c.delta.content ?? "";
        finish = c.finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(finish).not.toBeNull();
    expect(usage?.completion_tokens).toBeGreaterThan(0);
    expect(usage?.total_tokens).toBe((usage?.prompt_tokens ?? 0) + (usage?.completion_tokens ?? 0));
    expect(typeof text).toBe("string");
  });

  it("embeddings (the SDK asks for base64 by default)", async () => {
    const r = await openai.embeddings.create({ model: "mistral-embed", input: ["hello world", "bonjour le monde"] });
    expect(r.data).toHaveLength(2);
    const v = r.data[0].embedding;
    expect(v.length).toBeGreaterThan(16);
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    expect(norm).toBeCloseTo(1, 3);
    expect(r.usage.prompt_tokens).toBeGreaterThan(0);
  });

  it("models", async () => {
    const list = await openai.models.list();
    const ids = list.data.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining(["mistral-tiny", "mistral-small"]));
  });

  it("a bad key gets a 401 AuthenticationError that never echoes the key", async () => {
    const bad = new OpenAI({
      baseURL: `${stack.base}/v1`,
      apiKey: "sk-not-a-real-key-0123456789abcdef",
      maxRetries: 0,
    });
    const err = await bad.chat.completions.create({ model: "mistral-tiny", messages }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(JSON.stringify((err as InstanceType<typeof OpenAI.APIError>).error)).not.toContain("0123456789abcdef");
  });

  it("a rate-limited key gets 429 with Retry-After, and the SDK's retry honours it", async () => {
    const created = await stack.admin("/v1/admin/keys", {
      method: "POST",
      body: JSON.stringify({
        name: "limited",
        tiers: ["mistral-tiny"],
        rpm: 20,
        tpm: 100_000,
        monthly_budget_micros: 1_000_000,
      }),
    });
    expect(created.status).toBeLessThan(300);
    const { key } = (await created.json()) as { key: string };
    const limited = new OpenAI({ baseURL: `${stack.base}/v1`, apiKey: key, maxRetries: 0 });
    // rpm 20: a burst of 20, then one request every 3 s.
    for (let i = 0; i < 20; i += 5) {
      await Promise.all(
        Array.from({ length: 5 }, () =>
          limited.chat.completions.create({ model: "mistral-tiny", messages, max_tokens: 1 }),
        ),
      );
    }
    const err = await limited.chat.completions
      .create({ model: "mistral-tiny", messages, max_tokens: 2 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const headers = (err as InstanceType<typeof OpenAI.APIError>).headers;
    const retryAfter = Number(headers?.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(3);
    // With retries on, the SDK waits what the 429's retry-after-ms says, then retries and succeeds.
    const calls: { at: number; status: number; retryAfterMs: number }[] = [];
    const patient = new OpenAI({
      baseURL: `${stack.base}/v1`,
      apiKey: key,
      maxRetries: 3,
      fetch: async (url, init) => {
        const at = Date.now();
        const res = await fetch(url, init);
        calls.push({ at, status: res.status, retryAfterMs: Number(res.headers.get("retry-after-ms") ?? 0) });
        return res;
      },
    });
    // Drain the bucket again so the patient client meets a 429 first.
    await limited.chat.completions.create({ model: "mistral-tiny", messages, max_tokens: 1 }).catch(() => undefined);
    const r = await patient.chat.completions.create({ model: "mistral-tiny", messages, max_tokens: 2 });
    expect(r.choices).toHaveLength(1);
    const firstRefusal = calls.findIndex((c) => c.status === 429);
    expect(firstRefusal).toBeGreaterThanOrEqual(0);
    const refused = calls[firstRefusal];
    const retry = calls[firstRefusal + 1];
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(retry).toBeDefined();
    // Behaviour, not speed: the retry was not sent before the server said it could succeed.
    expect(retry.at - refused.at).toBeGreaterThanOrEqual(refused.retryAfterMs - 50);
    expect(calls.at(-1)?.status).toBe(200);
  }, 150_000);

  it("a client that aborts mid-stream is still metered for what was generated", async () => {
    const controller = new AbortController();
    // Long enough that the worker decides before the replica would finish on its own (see the unread
    // bound in worker/api/sse.ts: under wrangler dev a disconnect is sometimes only seen that way).
    const maxTokens = 4000;
    const { data: stream, response } = await openai.chat.completions
      .create(
        { model: "mistral-small", messages, max_tokens: maxTokens, temperature: 0, stream: true },
        { signal: controller.signal },
      )
      .withResponse();
    const requestId = response.headers.get("x-request-id") ?? "";
    expect(requestId).toMatch(/^req_/);
    let chunks = 0;
    try {
      for await (const _chunk of stream) if (++chunks === 3) controller.abort();
    } catch {
      // AbortError: expected
    }
    expect(chunks).toBeGreaterThanOrEqual(3);
    // The ledger record appears once the worker has settled it: wait for it (the test's timeout bounds this).
    const record = await until(async () => {
      const res = await stack.admin(`/v1/admin/usage/requests?request_id=${encodeURIComponent(requestId)}`);
      return ((await res.json()) as { data: Array<{ status: string; completion_tokens: number }> }).data[0];
    });
    expect(record.status).toBe("cancelled");
    expect(record.completion_tokens).toBeGreaterThan(0);
    expect(record.completion_tokens).toBeLessThan(maxTokens);
  });
});

describe("budget refusals through the openai SDK (its default retries on)", () => {
  async function budgetKey(name: string, monthly_budget_micros: number): Promise<string> {
    const res = await stack.admin("/v1/admin/keys", {
      method: "POST",
      body: JSON.stringify({ name, tiers: ["mistral-small"], monthly_budget_micros }),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { key: string }).key;
  }
  /** The requests the server saw for a key: every budget refusal writes one `rejected` ledger row. */
  async function rejectedRows(key: string): Promise<number> {
    const r = (await (
      await fetch(`${stack.base}/v1/usage/requests?limit=100`, { headers: { authorization: `Bearer ${key}` } })
    ).json()) as { data: { status: string }[] };
    return r.data.filter((x) => x.status === "rejected").length;
  }

  it("a request too big for what remains names its need and the remainder, and is not retried", async () => {
    const key = await budgetKey("budget 100", 100);
    const client = new OpenAI({ baseURL: `${stack.base}/v1`, apiKey: key, maxRetries: 2 });
    const err = await client.chat.completions
      .create({ model: "mistral-small", messages, max_tokens: 500 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.code).toBe("budget_insufficient");
    expect(e.message).toMatch(/This request needs \d+ µ€ of budget to start/);
    expect(e.message).toMatch(/max_tokens 500/);
    expect(e.message).toMatch(/100 µ€ remain this month/);
    expect(e.message).toMatch(/set max_tokens to \d+ or less, or raise the key's monthly budget/);
    expect(e.headers?.get("x-should-retry")).toBe("false");
    // Seen once at the server: the SDK did not retry it.
    await until(async () => ((await rejectedRows(key)) >= 1 ? true : undefined));
    await new Promise((r) => setTimeout(r, 500));
    expect(await rejectedRows(key)).toBe(1);
    // What it suggests works: a small max_tokens on the same key is served.
    const fits = Number(/set max_tokens to (\d+)/.exec(e.message)![1]);
    const ok = await client.chat.completions.create({
      model: "mistral-small",
      messages,
      max_tokens: Math.min(fits, 8),
    });
    expect(ok.usage?.completion_tokens).toBeGreaterThan(0);
  });

  it("a budget truly spent gets insufficient_quota, not retried", async () => {
    const key = await budgetKey("budget 0", 0);
    const client = new OpenAI({ baseURL: `${stack.base}/v1`, apiKey: key, maxRetries: 2 });
    const err = await client.chat.completions
      .create({ model: "mistral-small", messages, max_tokens: 8 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const e = err as InstanceType<typeof OpenAI.RateLimitError>;
    expect(e.code).toBe("insufficient_quota");
    expect(e.type).toBe("insufficient_quota");
    expect(e.message).toMatch(/monthly budget is spent/);
    expect(e.headers?.get("x-should-retry")).toBe("false");
    await until(async () => ((await rejectedRows(key)) >= 1 ? true : undefined));
    await new Promise((r) => setTimeout(r, 500));
    expect(await rejectedRows(key)).toBe(1);
  });
});

describe("@mistralai/mistralai SDK", () => {
  it("chat.complete", async () => {
    const r = await mistral.chat.complete({ model: "mistral-small", messages, maxTokens: 8, temperature: 0 });
    expect(r.choices?.[0].message?.role).toBe("assistant");
    expect(r.usage.completionTokens).toBeGreaterThan(0);
  });

  it("chat.stream", async () => {
    const stream = await mistral.chat.stream({ model: "mistral-tiny", messages, maxTokens: 8, temperature: 0 });
    let finish: string | null | undefined;
    let usageSeen = false;
    for await (const event of stream) {
      for (const c of event.data.choices) finish = c.finishReason ?? finish;
      if (event.data.usage) usageSeen = true;
    }
    expect(finish).toBeTruthy();
    expect(usageSeen).toBe(true);
  });

  it("embeddings.create", async () => {
    const r = await mistral.embeddings.create({ model: "mistral-embed", inputs: ["hello"] });
    expect(r.data[0].embedding?.length).toBeGreaterThan(16);
  });

  it("models.list", async () => {
    const r = await mistral.models.list();
    // Parsed as Mistral base-model cards (not the SDK's "unknown" fallback).
    const cards = (r.data ?? []).map((m) => ("id" in m && m.type === "base" ? m.id : "unparsed"));
    expect(cards).toEqual(expect.arrayContaining(["mistral-tiny"]));
    expect(cards).not.toContain("unparsed");
  });
});

describe("what npm start prints, and the keys CLI beside it", () => {
  const root = resolve(import.meta.dirname, "../..");

  it("the printed curl and Node snippets set max_tokens, and the Node one runs as printed from any directory", () => {
    const curl = stack.logs.find((l) => l.includes(`"messages":[{"role":"user","content":"Hello!"}]`));
    expect(curl).toContain(`"max_tokens":64`);
    // The node snippet: from `node --input-type=module -e '` to its closing `'`.
    const start = stack.logs.findIndex((l) => l.startsWith("node --input-type=module -e '"));
    expect(start).toBeGreaterThanOrEqual(0);
    const end = stack.logs.findIndex((l, i) => i > start && l.endsWith("'"));
    const code = stack.logs
      .slice(start + 1, end + 1)
      .join("\n")
      .replace(/'$/, "");
    expect(code).toContain(`"max_tokens":64`);
    // Outside the repository: no node_modules to resolve anything from.
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", code], {
      cwd: tmpdir(),
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/completion_tokens: \d+/);
  });

  it("`npm run keys` finds the worker on PORT when EDGE_URL is unset", () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: new URL(stack.base).port, ADMIN_TOKEN: stack.adminToken };
    delete env.EDGE_URL;
    const r = spawnSync(resolve(root, "node_modules/.bin/tsx"), ["scripts/keys.ts", "list", "--json"], {
      cwd: root,
      env,
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const listed = JSON.parse(r.stdout) as { data: Array<{ name: string }> };
    expect(listed.data.length).toBeGreaterThan(0);
  });
});
