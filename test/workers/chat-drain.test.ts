/**
 * Cancel-and-drain metering (worker/inference/generation.ts): on a stop string or a client disconnect
 * the edge cancels the replica, reads its stream to the final `done`, and bills the backend's count.
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { GenerateEvent } from "../../contract/wire";
import worker from "../../worker/index";
import { pumpGeneration, type OpenStream } from "../../worker/inference/generation";
import { createStopMatcher } from "../../worker/tokenizer";
import { FakeBackend, byteIds } from "./chat-fake-backend";
import { chat, newKey, sseEvents, tiersJson, usageRecord } from "./chat-harness";

let key: string;
let backend: FakeBackend;
const hosts = ["r1.test", "r2.test", "r3.test"];

beforeAll(async () => {
  key = (await newKey()).key;
});
beforeEach(() => {
  backend = new FakeBackend();
  backend.install();
});

/** A chat call whose client can disconnect: `signal` is the request's, `ctx` lets us wait for waitUntil work. */
async function disconnectable(body: Record<string, unknown>, signal: AbortSignal) {
  const ctx = createExecutionContext();
  const req = new Request("https://edge.test/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "mistral-tiny", messages: [{ role: "user", content: "Hi there" }], ...body }),
    signal,
  });
  const res = worker.fetch(req, { ...env, TIERS: tiersJson() }, ctx);
  return { res, settled: () => waitOnExecutionContext(ctx) };
}

describe("streamed chat", () => {
  it("a stop string: the final chunk's usage is the backend's count after the drain", async () => {
    for (const h of hosts) backend.set(h, { kind: "ok", text: "abc<END>def ghi jkl".repeat(10), chunk: 1, lag: 4, delayMs: 2 });
    const r = await chat(key, { stream: true, stop: "<END>", stream_options: { include_usage: true } });
    const events = sseEvents(await r.text()) as any[];
    const id = r.res.headers.get("x-request-id")!;
    const truth = backend.finished.get(id)!;
    expect(truth).toMatchObject({ finish: "cancelled" });
    expect(truth.completion).toBeGreaterThanOrEqual("abc<END>".length + 4);
    expect(events.slice(0, -3).map((c) => c.choices[0].delta.content).join("")).toBe("abc");
    expect(events.at(-3).choices[0].finish_reason).toBe("stop");
    expect(events.at(-2).usage.completion_tokens).toBe(truth.completion);
    expect(events.at(-1)).toBe("[DONE]");
    expect(await usageRecord(id)).toMatchObject({ status: "ok", completion_tokens: truth.completion });
  });

  it("client disconnect mid-stream: the replica is cancelled (not aborted), drained, and its count billed once", async () => {
    for (const h of hosts) backend.set(h, { kind: "ok", text: "x".repeat(200), chunk: 1, delayMs: 5, lag: 2 });
    const ac = new AbortController();
    const { res, settled } = await disconnectable({ stream: true }, ac.signal);
    const r = await res;
    const id = r.headers.get("x-request-id")!;
    const reader = r.body!.getReader();
    for (let chunks = 0; chunks < 4; chunks++) await reader.read();
    ac.abort();
    await reader.cancel();
    await settled();
    const truth = backend.finished.get(id)!;
    expect(backend.cancels).toEqual([id]);
    expect(truth.finish).toBe("cancelled"); // ended by /v1/cancel, not by the fetch being aborted
    expect(truth.completion).toBeGreaterThanOrEqual(3);
    expect(truth.completion).toBeLessThan(200);
    expect(await usageRecord(id)).toMatchObject({ status: "cancelled", completion_tokens: truth.completion });
  });
});

describe("non-streamed chat", () => {
  it("client disconnect: generation is drained under waitUntil and the backend's count is billed", async () => {
    for (const h of hosts) backend.set(h, { kind: "ok", text: "y".repeat(200), chunk: 2, delayMs: 5, lag: 3 });
    const ac = new AbortController();
    const { res, settled } = await disconnectable({}, ac.signal);
    await new Promise((r) => setTimeout(r, 60));
    ac.abort();
    const r = await res;
    expect(r.status).toBe(499);
    await settled();
    const id = r.headers.get("x-request-id")!;
    const truth = backend.finished.get(id)!;
    expect(backend.cancels).toEqual([id]);
    expect(truth.finish).toBe("cancelled");
    expect(truth.completion).toBeGreaterThan(0);
    expect(truth.completion).toBeLessThan(200);
    expect(await usageRecord(id)).toMatchObject({ status: "cancelled", completion_tokens: truth.completion });
  });

  it("the backend's stop token is never text nor billed, even if one arrives", async () => {
    const r = await pumpGeneration(stream([{ type: "tokens", ids: [...byteIds("hi"), 2] }, done("stop", 2)]), opts());
    expect(r).toMatchObject({ finishReason: "stop", completionTokens: 2 });
    expect(r.error).toBeUndefined();
  });
});

// pumpGeneration with a scripted stream: the drain's deadline and fallbacks.
const done = (finish: "stop" | "length" | "cancelled", completion: number): GenerateEvent => ({
  type: "done", finish_reason: finish, usage: { prompt_tokens: 5, cached_tokens: 0, completion_tokens: completion }, timings: { queue_ms: 0, prefill_ms: 0, decode_ms: 0 },
});

/** Yields `events`; then, if `hang`, waits until `abort` fires and throws like a broken fetch. */
function stream(events: GenerateEvent[], hang?: AbortSignal): OpenStream {
  async function* rest(): AsyncGenerator<GenerateEvent> {
    for (const ev of events.slice(1)) yield ev;
    if (hang) {
      await new Promise<void>((resolve) => (hang.aborted ? resolve() : hang.addEventListener("abort", () => resolve())));
      throw new Error("aborted");
    }
  }
  return { first: events[0]!, rest: rest() };
}

function opts(over: Partial<Parameters<typeof pumpGeneration>[1]> = {}) {
  const text: string[] = [];
  return {
    matcher: createStopMatcher(["STOP"]),
    onText: (t: string) => (text.push(t), true),
    clientSignal: new AbortController().signal,
    cancelBackend: async () => true,
    abortBackend: () => {},
    startedAt: Date.now(),
    ...over,
  };
}

describe("pumpGeneration drain", () => {
  it("no done within the drain deadline: the fetch is aborted and the ids received are billed", async () => {
    const backendAbort = new AbortController();
    let cancels = 0;
    const t0 = Date.now();
    const r = await pumpGeneration(
      stream([{ type: "tokens", ids: byteIds("aSTOP") }, { type: "tokens", ids: byteIds("bc") }], backendAbort.signal),
      opts({ cancelBackend: async () => ++cancels, abortBackend: () => backendAbort.abort(), drainMs: 50 }),
    );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
    expect(cancels).toBe(1);
    expect(backendAbort.signal.aborted).toBe(true);
    expect(r).toMatchObject({ finishReason: "stop", completionTokens: 7, backendFailed: false });
    expect(r.error).toMatch(/drain/);
  });

  it("the stream ends without done while draining: ids received are billed", async () => {
    const r = await pumpGeneration(stream([{ type: "tokens", ids: byteIds("aSTOPxy") }]), opts());
    expect(r).toMatchObject({ finishReason: "stop", completionTokens: 7, backendFailed: false });
  });

  it("the client leaves while waiting for the next event: cancel is sent at once, done's count is billed", async () => {
    const client = new AbortController();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    async function* rest(): AsyncGenerator<GenerateEvent> {
      await gate;
      yield { type: "tokens", ids: byteIds("zz") };
      yield done("cancelled", 5);
    }
    const pending = pumpGeneration({ first: { type: "tokens", ids: byteIds("abc") }, rest: rest() }, opts({
      clientSignal: client.signal,
      cancelBackend: async () => release(),
    }));
    client.abort();
    expect(await pending).toMatchObject({ finishReason: "cancelled", completionTokens: 5 });
  });
});
