/**
 * End to end through the real pieces: the worker under wrangler's unstable_startWorker (workerd,
 * miniflare D1/DO/Queues/Cache, request.signal on disconnect) in front of a real backend process
 * (ONNX Runtime, dev models), with a key made through the admin API. Plain HTTP, no SDKs.
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyLocalMigrations, startLocalWorker, type LocalWorker } from "../../scripts/lib/local-worker";
import { applyChatTemplate, encode } from "../../worker/tokenizer";
import { freePort, spawnUntilReady, stopProcess } from "../../scripts/lib/processes";

const root = resolve(import.meta.dirname, "../..");
const haveModels = ["tiny", "small"].every((m) => existsSync(resolve(root, "models/dev", m, "model.json")));
if (!haveModels) console.warn("e2e-worker: models/dev/{tiny,small} missing (run `npm run models`); skipping");

const backendToken = randomBytes(16).toString("hex");
const adminToken = randomBytes(16).toString("hex");

let backend: ChildProcess | undefined;
let backendUrl = "";
let worker: LocalWorker | undefined;
let base = "";
let stateDir = "";
let apiKey = "";

type Json = Record<string, any>;

async function post(path: string, body: unknown, init: RequestInit = {}, key = apiKey): Promise<Response> {
  return fetch(`${base}${path}`, {
    method: "POST",
    ...init,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...(init.headers ?? {}) },
    body: JSON.stringify(body),
  });
}

async function newKey(name: string): Promise<string> {
  const res = await fetch(`${base}/v1/admin/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ name, tiers: ["mistral-tiny", "mistral-small", "mistral-embed"], rpm: 10_000, tpm: 10_000_000, monthly_budget_micros: 1_000_000_000 }),
  });
  expect(res.status, await res.clone().text()).toBeLessThan(300);
  return ((await res.json()) as { key: string }).key;
}

/** Reads an SSE response to the end; returns its data payloads. */
async function readSse(res: Response): Promise<(Json | "[DONE]")[]> {
  const text = await res.text();
  return text.split("\n\n").filter((f) => f.startsWith("data: ")).map((f) => f.slice(6)).map((d) => (d === "[DONE]" ? "[DONE]" : JSON.parse(d)));
}

async function usage(key: string): Promise<Json[]> {
  const res = await fetch(`${base}/v1/usage`, { headers: { authorization: `Bearer ${key}` } });
  return ((await res.json()) as { data: Json[] }).data;
}

async function backendMetric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${backendUrl}/metrics`, { headers: { authorization: `Bearer ${backendToken}` } })).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  let v = await fn();
  while (!ok(v) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 200));
    v = await fn();
  }
  return v;
}

beforeAll(async () => {
  if (!haveModels) return;
  const backendPort = await freePort();
  backendUrl = `http://127.0.0.1:${backendPort}`;
  const started = await spawnUntilReady(
    resolve(root, "node_modules/.bin/tsx"),
    ["gpu-backend/main.ts", "--model", "models/dev/tiny", "--model", "models/dev/small", "--port", String(backendPort), "--token", backendToken, "--threads", "1"],
    { cwd: root, env: process.env, ready: /backend ready/, timeoutMs: 240_000, label: "backend" },
  );
  backend = started.child;

  // D1 schema: the same migrations `npm start` applies, into the state dir the worker then uses.
  stateDir = mkdtempSync(join(tmpdir(), "moe-edge-e2e-worker-"));
  applyLocalMigrations(root, stateDir);

  const tiers = {
    "mistral-tiny": { backends: [backendUrl], backend_model: "tiny", context_window: 4096, price: { input: 140000, cached_input: 14000, output: 420000 } },
    "mistral-small": { backends: [backendUrl], backend_model: "small", context_window: 4096, price: { input: 600000, cached_input: 60000, output: 1800000 } },
    "mistral-embed": { backends: [backendUrl], backend_model: "small", context_window: 4096, kind: "embedding", price: { input: 100000, cached_input: 100000, output: 0 } },
  };
  worker = await startLocalWorker({ root, persistDir: stateDir, tiers, backendToken, adminToken });
  base = worker.url;
  apiKey = await newKey("e2e-worker");
}, 300_000);

afterAll(async () => {
  await worker?.dispose();
  if (backend) await stopProcess(backend);
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

const messages = [{ role: "user", content: "Write a long story about a lighthouse keeper and the sea." }];

describe.skipIf(!haveModels)("worker + real backend", () => {
  it("lists the key's models", async () => {
    const res = await fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${apiKey}` } });
    const j = (await res.json()) as Json;
    expect(j.data.map((m: Json) => m.id).sort()).toEqual(["mistral-embed", "mistral-small", "mistral-tiny"]);
    expect(j.data[0].max_context_length).toBe(4096);
  });

  let greedyText = "";
  it("chat, non-streaming: edge token counts, request id", async () => {
    const res = await post("/v1/chat/completions", { model: "mistral-tiny", messages, temperature: 0, max_tokens: 24 });
    const j = (await res.json()) as Json;
    expect(res.status, JSON.stringify(j)).toBe(200);
    expect(res.headers.get("x-request-id")).toMatch(/^req_/);
    expect(j.object).toBe("chat.completion");
    expect(j.usage.prompt_tokens).toBe(applyChatTemplate(messages as never).length);
    expect(j.usage.completion_tokens).toBeGreaterThan(0);
    expect(j.usage.completion_tokens).toBeLessThanOrEqual(24);
    expect(["stop", "length"]).toContain(j.choices[0].finish_reason);
    greedyText = j.choices[0].message.content;
  });

  it("chat, streaming: the same greedy text as non-streaming, usage on the last chunk, [DONE]", async () => {
    const res = await post("/v1/chat/completions", { model: "mistral-tiny", messages, temperature: 0, max_tokens: 24, stream: true, stream_options: { include_usage: true } });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const events = await readSse(res);
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1) as Json[];
    expect(chunks[0].choices[0].delta.role).toBe("assistant");
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    expect(text).toBe(greedyText);
    expect(chunks.at(-2)!.usage.completion_tokens).toBeGreaterThan(0);
    expect(chunks.at(-1)!.choices).toEqual([]);
  });

  it("a second identical prompt reuses the backend's prefix cache (cached_tokens)", async () => {
    const res = await post("/v1/chat/completions", { model: "mistral-tiny", messages, temperature: 0, max_tokens: 4 });
    const j = (await res.json()) as Json;
    expect(j.usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(0);
    expect(j.usage.prompt_tokens_details.cached_tokens).toBeLessThan(j.usage.prompt_tokens);
  });

  it("stop strings end the text at the edge with finish_reason stop", async () => {
    expect(greedyText.length).toBeGreaterThan(6);
    const stop = greedyText.slice(4, 7);
    const expected = greedyText.slice(0, greedyText.indexOf(stop));
    for (const stream of [false, true]) {
      const res = await post("/v1/chat/completions", { model: "mistral-tiny", messages, temperature: 0, max_tokens: 24, stop: [stop], stream });
      if (!stream) {
        const j = (await res.json()) as Json;
        expect(j.choices[0]).toMatchObject({ finish_reason: "stop", message: { content: expected } });
      } else {
        const chunks = (await readSse(res)).slice(0, -1) as Json[];
        expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(expected);
        expect(chunks.at(-1)!.choices[0].finish_reason).toBe("stop");
      }
    }
  });

  it("embeddings: float and base64", async () => {
    const res = await post("/v1/embeddings", { model: "mistral-embed", input: ["Hello world", "Bonjour"] });
    const j = (await res.json()) as Json;
    expect(res.status, JSON.stringify(j)).toBe(200);
    expect(j.data).toHaveLength(2);
    expect(j.usage.prompt_tokens).toBe(2 + encode("Hello world").length + encode("Bonjour").length);
    const v: number[] = j.data[0].embedding;
    expect(Math.hypot(...v)).toBeCloseTo(1, 3);
    const b = (await (await post("/v1/embeddings", { model: "mistral-embed", input: "Hello world", encoding_format: "base64" })).json()) as Json;
    const floats = new Float32Array(new Uint8Array(Buffer.from(b.data[0].embedding, "base64")).buffer);
    expect([...floats]).toEqual([...new Float32Array(v)]);
  });

  it("client disconnect mid-stream: the backend cancels and the usage is still recorded once", async () => {
    const key = await newKey("e2e-disconnect");
    const cancelledBefore = await backendMetric("backend_generate_requests_total", 'model="small",finish_reason="cancelled"');
    const ac = new AbortController();
    const res = await post("/v1/chat/completions", { model: "mistral-small", messages, temperature: 0, max_tokens: 2000, stream: true }, { signal: ac.signal }, key);
    const reader = res.body!.getReader();
    let received = "";
    while ((received.match(/"content":"[^"]+"/g) ?? []).length < 3) {
      const { value, done } = await reader.read();
      if (done) break;
      received += new TextDecoder().decode(value);
    }
    ac.abort();
    const contentChunks = (received.match(/"content":"[^"]+"/g) ?? []).length;
    expect(contentChunks).toBeGreaterThanOrEqual(3);

    const cancelled = await eventually(
      () => backendMetric("backend_generate_requests_total", 'model="small",finish_reason="cancelled"'),
      (v) => v > cancelledBefore,
    );
    expect(cancelled).toBe(cancelledBefore + 1);
    const rows = await eventually(() => usage(key), (r) => r.length > 0);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ tier: "mistral-small", requests: 1, prompt_tokens: applyChatTemplate(messages as never).length });
    expect(rows[0].completion_tokens).toBeGreaterThanOrEqual(contentChunks);
    expect(rows[0].completion_tokens).toBeLessThan(2000);
  });

  it("the ledger matches what the client was told: no lost or double-counted usage", async () => {
    const key = await newKey("e2e-ledger");
    let prompt = 0;
    let completion = 0;
    for (const stream of [false, true, false]) {
      const res = await post("/v1/chat/completions", { model: "mistral-tiny", messages, max_tokens: 6, stream, stream_options: { include_usage: true } }, {}, key);
      const u = stream ? ((await readSse(res)).at(-2) as Json).usage : ((await res.json()) as Json).usage;
      prompt += u.prompt_tokens;
      completion += u.completion_tokens;
    }
    const rows = await eventually(() => usage(key), (r) => r[0]?.requests === 3);
    expect(rows).toEqual([expect.objectContaining({ tier: "mistral-tiny", requests: 3, prompt_tokens: prompt, completion_tokens: completion })]);
  });
});
