import { describe, expect, it } from "vitest";
import {
  parseGenerateEvent,
  type BackendErrorBody,
  type EmbedResponse,
  type GenerateEvent,
  type ModelsResponse,
} from "../../contract/wire";
import { devModel } from "./engine-helpers";
import { auth, ids, metric, post, readTokens, spawnBackend, useBackend, type Backend } from "./helpers/backend";
import { poll } from "./helpers/poll";
import { exitOf } from "./helpers/process";

async function generate(
  b: Backend,
  body: Record<string, unknown>,
): Promise<{ tokens: number[]; done: Extract<GenerateEvent, { type: "done" }> }> {
  const res = await post(`${b.url}/v1/generate`, { model: "tiny", request_id: "r", ...body });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("application/x-ndjson");
  const events = (await res.text()).trim().split("\n").map(parseGenerateEvent);
  const done = events.pop()!;
  if (done.type !== "done") throw new Error("stream did not end with done");
  expect(events.every((e) => e.type === "tokens")).toBe(true);
  return { tokens: events.flatMap((e) => (e.type === "tokens" ? e.ids : [])), done };
}

describe("backend HTTP", () => {
  const b = useBackend(["--model", devModel("tiny"), "--model", devModel("small"), "--warmup-delay-ms", "1500"], {
    ready: false,
  });

  it("health is 503 until models are loaded and warmed, then 200; ready line printed", async () => {
    expect((await fetch(`${b.url}/health`)).status).toBe(503);
    await b.ready;
    const h = await fetch(`${b.url}/health`);
    expect(h.status).toBe(200);
    expect(await h.json()).toMatchObject({ models: ["tiny", "small"] });
  });

  it("requires the bearer token", async () => {
    expect(
      (await post(`${b.url}/v1/generate`, { model: "tiny", input_ids: [1], max_tokens: 1, request_id: "x" }, {}))
        .status,
    ).toBe(401);
    expect(
      (await post(`${b.url}/v1/embed`, { model: "tiny", inputs: [[1]] }, { authorization: "Bearer nope" })).status,
    ).toBe(401);
    // /metrics has its own METRICS_TOKEN (backend-metrics.test.ts); unset, it is open as vLLM's is.
    expect((await fetch(`${b.url}/metrics`)).status).toBe(200);
    const models = (await (await fetch(`${b.url}/v1/models`, { headers: auth })).json()) as ModelsResponse;
    expect(models.data.map((m) => m.id)).toEqual(["tiny", "small"]);
  });

  it("rejects bad input with 400/404 and a clear message, and keeps serving", async () => {
    const base = { model: "tiny", input_ids: [1, 2, 3], max_tokens: 4, request_id: "bad" };
    const cases: Array<[unknown, number, RegExp]> = [
      ["{not json", 400, /valid JSON/],
      [{ ...base, input_ids: [] }, 400, /input_ids/],
      [{ ...base, input_ids: [1, 32000] }, 400, /vocabulary/],
      [{ ...base, input_ids: [1, -4] }, 400, /input_ids/],
      [{ ...base, input_ids: "hello" }, 400, /input_ids/],
      [{ ...base, max_tokens: 0 }, 400, /max_tokens/],
      [{ ...base, temperature: 3 }, 400, /temperature/],
      [{ ...base, top_p: 0 }, 400, /top_p/],
      [{ ...base, top_k: -1 }, 400, /top_k/],
      [{ ...base, input_ids: ids(4096) }, 400, /context window/],
      [{ ...base, model: "nope" }, 404, /nope/],
    ];
    for (const [body, status, msg] of cases) {
      const res = await post(`${b.url}/v1/generate`, body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(status);
      expect(((await res.json()) as BackendErrorBody).error.message).toMatch(msg);
    }
    expect((await post(`${b.url}/v1/embed`, { model: "tiny", inputs: [[]] })).status).toBe(400);
    expect((await post(`${b.url}/v1/embed`, { model: "tiny", inputs: [[99999]] })).status).toBe(400);
    expect((await post(`${b.url}/v1/embed`, { model: "x", inputs: [[1]] })).status).toBe(404);
    expect((await fetch(`${b.url}/health`)).status).toBe(200);
  });

  it("streams NDJSON tokens and a done event; prefix cache reports cached tokens and keeps greedy output", async () => {
    const prompt = ids(80, 2);
    const first = await generate(b, { input_ids: prompt, max_tokens: 6 });
    expect(first.tokens).toHaveLength(6);
    expect(first.done).toMatchObject({
      finish_reason: "length",
      usage: { prompt_tokens: 80, cached_tokens: 0, completion_tokens: 6 },
    });
    const again = await generate(b, { input_ids: prompt, max_tokens: 6 });
    expect(again.done.usage.cached_tokens).toBe(64);
    expect(again.tokens).toEqual(first.tokens);
    const salted = await generate(b, { input_ids: prompt, max_tokens: 6, cache_salt: "other-tenant" });
    expect(salted.done.usage.cached_tokens).toBe(0);
    expect(await metric(b, 'moe_edge_prefix_cache_hit_rate{model_name="tiny"}')).toBeGreaterThan(0);
  });

  it("embeddings: one L2-normalised vector per input", async () => {
    const res = await post(`${b.url}/v1/embed`, { model: "small", inputs: [ids(5), ids(12, 3)] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as EmbedResponse;
    expect(body.data).toHaveLength(2);
    expect(body.data[0]).toHaveLength(256);
    for (const v of body.data) expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    expect(body.usage.prompt_tokens).toBe(17);
  });

  it("client disconnect cancels the sequence and frees its KV slot", async () => {
    const ac = new AbortController();
    const res = await post(
      `${b.url}/v1/generate`,
      { model: "tiny", input_ids: ids(30, 4), max_tokens: 3000, request_id: "c" },
      auth,
      ac.signal,
    );
    const reader = res.body!.getReader();
    await reader.read();
    expect(await metric(b, 'moe_edge_num_requests_running{model_name="tiny"}')).toBe(1);
    ac.abort();
    const running = await poll(
      () => metric(b, 'moe_edge_num_requests_running{model_name="tiny"}'),
      (n) => n === 0,
      { tries: 51, everyMs: 20 },
    );
    expect(running).toBe(0);
    expect(await metric(b, 'moe_edge_num_requests_running{model_name="tiny"}')).toBe(0);
    expect(await metric(b, 'moe_edge_request_success_total{model_name="tiny",finished_reason="cancelled"}')).toBe(1);
  });
});

/**
 * The backend's audit lines (one JSON object per finished generate request) for `requestId`, once the first
 * has arrived whole. The backend prints it before it sends `done`, but its stdout pipe and the HTTP socket
 * are two channels: the test may read the response before the line.
 */
async function auditLines(b: Backend, requestId: string): Promise<Array<Record<string, unknown>>> {
  await b.waitFor(new RegExp(`\\{"event":"generate","request_id":"${requestId}"[^\\n]*\\n`));
  return b
    .stdout()
    .split("\n")
    .filter((l) => l.startsWith('{"event":"generate"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.request_id === requestId);
}

describe("backend cancel (POST /v1/cancel) and the per-request audit line", () => {
  const b = useBackend(["--model", devModel("tiny")]);
  const cancel = (request_id: string, headers: Record<string, string> = auth) =>
    post(`${b.url}/v1/cancel`, { request_id }, headers);

  it("cancel mid-generation: the open stream still ends with done/cancelled and usage = the ids streamed", async () => {
    const res = await post(`${b.url}/v1/generate`, {
      model: "tiny",
      input_ids: ids(20, 5),
      max_tokens: 3000,
      request_id: "cancel-me",
    });
    expect(res.status).toBe(200);
    const stream = await readTokens(res, 3);
    const c = await cancel("cancel-me");
    expect(c.status).toBe(200);
    expect(await c.json()).toEqual({ cancelled: true });
    const events = (await stream.rest()).trim().split("\n").map(parseGenerateEvent);
    const done = events.pop()!;
    expect(done).toMatchObject({ type: "done", finish_reason: "cancelled" });
    const streamed = events.flatMap((e) => (e.type === "tokens" ? e.ids : []));
    expect(streamed.length).toBeGreaterThanOrEqual(3);
    expect(streamed.length).toBeLessThan(3000);
    if (done.type === "done") expect(done.usage.completion_tokens).toBe(streamed.length);

    // Finished: the id is no longer in flight.
    expect(await (await cancel("cancel-me")).json()).toEqual({ cancelled: false });
    const [line] = await auditLines(b, "cancel-me");
    expect(line).toMatchObject({
      event: "generate",
      model: "tiny",
      prompt_tokens: 20,
      completion_tokens: streamed.length,
      finish_reason: "cancelled",
    });
    expect(Object.keys(line!).sort()).toEqual(
      [
        "event",
        "request_id",
        "model",
        "prompt_tokens",
        "cached_tokens",
        "completion_tokens",
        "finish_reason",
        "queue_ms",
        "prefill_ms",
        "decode_ms",
      ].sort(),
    );
  });

  it("unknown id -> {cancelled:false}; bad body -> 400; no token -> 401", async () => {
    expect(await (await cancel("never-seen")).json()).toEqual({ cancelled: false });
    expect((await post(`${b.url}/v1/cancel`, { request_id: "" })).status).toBe(400);
    expect((await post(`${b.url}/v1/cancel`, "{nope")).status).toBe(400);
    expect((await cancel("x", {})).status).toBe(401);
    expect((await cancel("x", { authorization: "Bearer wrong" })).status).toBe(401);
  });

  it("every finished generate request prints exactly one audit line, disconnects included", async () => {
    const { tokens, done } = await generate(b, { input_ids: ids(12, 6), max_tokens: 5, request_id: "audit-1" });
    const lines = await auditLines(b, "audit-1");
    expect(lines).toEqual([
      expect.objectContaining({
        prompt_tokens: 12,
        completion_tokens: tokens.length,
        finish_reason: done.finish_reason,
      }),
    ]);

    const ac = new AbortController();
    const res = await post(
      `${b.url}/v1/generate`,
      { model: "tiny", input_ids: ids(12, 7), max_tokens: 3000, request_id: "audit-2" },
      auth,
      ac.signal,
    );
    await res.body!.getReader().read();
    ac.abort();
    expect(await auditLines(b, "audit-2")).toEqual([expect.objectContaining({ finish_reason: "cancelled" })]);
    expect(b.stdout()).not.toMatch(/"ids"/);
  });
});

describe("backend limits and shutdown", () => {
  it("queue full -> 429 with Retry-After; SIGTERM drains (503) and exits 0", async () => {
    const b = await spawnBackend([
      "--model",
      devModel("tiny"),
      "--max-batch",
      "1",
      "--max-queue",
      "1",
      "--grace-ms",
      "300",
    ]);
    await b.ready;
    const long = { model: "tiny", input_ids: ids(10), max_tokens: 3000, request_id: "l" };
    const r1 = await post(`${b.url}/v1/generate`, long);
    const r2 = await post(`${b.url}/v1/generate`, long);
    const r3 = await post(`${b.url}/v1/generate`, long);
    expect(r1.status).toBe(200);
    expect(r2.status).toBe(200);
    expect(r3.status).toBe(429);
    expect(r3.headers.get("retry-after")).toBeTruthy();
    const exited = exitOf(b.proc);
    b.proc.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 50));
    expect((await fetch(`${b.url}/health`).catch(() => ({ status: 503 }))).status).toBe(503);
    const [t1, t2] = await Promise.all([r1.text(), r2.text()]);
    expect(parseGenerateEvent(t1.trim().split("\n").pop()!)).toMatchObject({
      type: "done",
      finish_reason: "cancelled",
    });
    expect(parseGenerateEvent(t2.trim().split("\n").pop()!)).toMatchObject({
      type: "done",
      finish_reason: "cancelled",
    });
    expect(await exited).toBe(0);
  });
});
