/**
 * Cancel-and-drain metering (worker/completion/pump.ts): on a stop string or a client disconnect
 * the edge cancels the replica, reads its stream to the final `done`, and bills the backend's count.
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { GenerateEvent } from "../../contract/wire";
import worker from "../../worker/index";
import { pumpGeneration, type OpenStream } from "../../worker/completion/pump";
import { MAX_UNREAD_BYTES } from "../../worker/api/sse";
import { createStopMatcher } from "../../worker/tokenizer";
import { FakeBackend, byteIds, gate } from "./chat-fake-backend";
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
    for (const h of hosts)
      backend.set(h, { kind: "ok", text: "abc<END>def ghi jkl".repeat(10), chunk: 1, lag: 4, delayMs: 2 });
    const r = await chat(key, { stream: true, stop: "<END>", stream_options: { include_usage: true } });
    const events = sseEvents(await r.text()) as any[];
    const id = r.res.headers.get("x-request-id")!;
    const truth = backend.finished.get(id)!;
    expect(truth).toMatchObject({ finish: "cancelled" });
    expect(truth.completion).toBeGreaterThanOrEqual("abc<END>".length + 4);
    expect(
      events
        .slice(0, -3)
        .map((c) => c.choices[0].delta.content)
        .join(""),
    ).toBe("abc");
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

describe("embeddings", () => {
  it("a client that leaves mid-request: the replica is asked to stop, and the tokens it computed are billed `cancelled`", async () => {
    backend.set("e1.test", { kind: "embed-held", computed: 7 });
    const ac = new AbortController();
    const ctx = createExecutionContext();
    const req = new Request("https://edge.test/v1/embeddings", {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "mistral-embed", input: ["one two three", "four five six"] }),
      signal: ac.signal,
    });
    const cancelled = backend.nextCancel();
    const res = worker.fetch(req, { ...env, TIERS: tiersJson() }, ctx);
    // The event: the replica has the request (it is held there until cancelled).
    while (!backend.seen.some((s) => s.path === "/v1/embed")) await new Promise((r) => setTimeout(r, 0));
    ac.abort();
    const id = await cancelled;
    expect((await res).status).toBe(499);
    await waitOnExecutionContext(ctx);
    expect(backend.finished.get(id)).toEqual({ finish: "cancelled", completion: 7 });
    // 7 tokens at mistral-embed's 100000 µ€ per million = 700000 units.
    expect(await usageRecord(id)).toMatchObject({ status: "cancelled", prompt_tokens: 7, cost_units: 700000 });
  });
});

describe("a client that stops reading", () => {
  it("a stream whose unread backlog passes MAX_UNREAD_BYTES counts as a disconnect: cancelled, drained, billed once", async () => {
    // Under wrangler dev a disconnect sometimes stalls the response pump without cancelling the stream or
    // firing request.signal; here the same thing is a body nobody reads.
    // The replica holds at 2500 tokens until a cancel arrives (an event): it cannot outrun the edge's decision.
    const g = gate(2500);
    void backend.nextCancel().then(g.release);
    for (const h of hosts) backend.set(h, { kind: "ok", text: "r".repeat(3000), chunk: 1, lag: 2, gate: g });
    const { res, settled } = await disconnectable(
      { stream: true, model: "mistral-small" },
      new AbortController().signal,
    );
    const r = await res;
    const id = r.headers.get("x-request-id")!;
    await settled();
    const truth = backend.finished.get(id)!;
    expect(backend.cancels).toEqual([id]);
    expect(truth.finish).toBe("cancelled");
    expect(truth.completion).toBeLessThan(3000);
    // About MAX_UNREAD_BYTES of frames (~150 bytes a token) went unread before the edge gave up.
    expect(truth.completion).toBeGreaterThan(MAX_UNREAD_BYTES / 400);
    expect(await usageRecord(id)).toMatchObject({ status: "cancelled", completion_tokens: truth.completion });
  });
});

describe("non-streamed chat", () => {
  it("client disconnect: generation is drained under waitUntil and the backend's count is billed", async () => {
    // Events, not sleeps: the replica holds after 10 tokens until the cancel arrives, and the client
    // leaves once the replica has the request.
    const g = gate(10);
    for (const h of hosts) backend.set(h, { kind: "ok", text: "y".repeat(200), chunk: 2, lag: 3, gate: g });
    void backend.nextCancel().then(g.release);
    const ac = new AbortController();
    const { res, settled } = await disconnectable({}, ac.signal);
    while (!backend.seen.some((s) => s.path === "/v1/generate")) await new Promise((r) => setTimeout(r, 0));
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

  it("a client already gone when the handler starts is seen: nothing runs, the record is `cancelled`", async () => {
    // request.signal aborted before any listener could be added (the old code listened only after admit).
    const ac = new AbortController();
    ac.abort();
    const { res, settled } = await disconnectable({}, ac.signal);
    const r = await res;
    expect(r.status).toBe(499);
    await settled();
    const id = r.headers.get("x-request-id")!;
    expect(backend.seen.filter((s) => s.path === "/v1/generate")).toHaveLength(0);
    expect(await usageRecord(id)).toMatchObject({ status: "cancelled", completion_tokens: 0, cost_units: 0 });
  });

  it("a long answer commits its 200 early: keep-alive spaces, then the JSON completion, billed `ok`", async () => {
    const g = gate(4);
    for (const h of hosts) backend.set(h, { kind: "ok", text: "z".repeat(40), chunk: 2, gate: g });
    const r = await chat(key, { max_tokens: 100 });
    // The handler answered while the replica was still held: the headers went out before the body.
    expect(r.res.status).toBe(200);
    expect(r.res.headers.get("content-type")).toBe("application/json");
    expect(r.res.headers.get("content-encoding")).toBe("identity");
    g.release();
    const text = await r.text();
    expect(text).toMatch(/^ +\{/);
    const j = JSON.parse(text);
    expect(j.choices[0]).toMatchObject({ message: { content: "z".repeat(40) }, finish_reason: "stop" });
    expect(j.usage).toMatchObject({ completion_tokens: 40 });
    expect(await usageRecord(r.res.headers.get("x-request-id")!)).toMatchObject({
      status: "ok",
      completion_tokens: 40,
    });
  });

  it("a committed answer whose backend then fails: a 200 with the text so far and finish_reason error, billed as delivered", async () => {
    const g = gate(4);
    for (const h of hosts) backend.set(h, { kind: "break-after", text: "partial", gate: g });
    const r = await chat(key, { max_tokens: 100 });
    expect(r.res.status).toBe(200);
    g.release();
    const j = JSON.parse(await r.text());
    expect(j.choices[0]).toMatchObject({ message: { content: "partial" }, finish_reason: "error" });
    expect(j.usage.completion_tokens).toBe(7);
    expect(await usageRecord(r.res.headers.get("x-request-id")!)).toMatchObject({
      status: "error",
      completion_tokens: 7,
    });
  });

  it("a committed answer whose client leaves: the replica is cancelled, drained and billed `cancelled`", async () => {
    const g = gate(6);
    for (const h of hosts) backend.set(h, { kind: "ok", text: "w".repeat(200), chunk: 2, lag: 3, gate: g });
    const ac = new AbortController();
    const { res, settled } = await disconnectable({}, ac.signal);
    const r = await res;
    expect(r.status).toBe(200);
    const cancelled = backend.nextCancel();
    ac.abort();
    await cancelled;
    g.release();
    await r.body?.cancel().catch(() => {});
    await settled();
    const id = r.headers.get("x-request-id")!;
    const truth = backend.finished.get(id)!;
    expect(backend.cancels).toEqual([id]);
    expect(truth).toMatchObject({ finish: "cancelled" });
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
  type: "done",
  finish_reason: finish,
  usage: { prompt_tokens: 5, cached_tokens: 0, completion_tokens: completion },
  timings: { queue_ms: 0, prefill_ms: 0, decode_ms: 0 },
});

/** Yields `events`; then, if `hang`, waits until `abort` fires and throws like a broken fetch. */
function stream(events: GenerateEvent[], hang?: AbortSignal): OpenStream {
  async function* rest(): AsyncGenerator<GenerateEvent> {
    for (const ev of events.slice(1)) yield ev;
    if (hang) {
      await new Promise<void>((resolve) =>
        hang.aborted ? resolve() : hang.addEventListener("abort", () => resolve()),
      );
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
      stream(
        [
          { type: "tokens", ids: byteIds("aSTOP") },
          { type: "tokens", ids: byteIds("bc") },
        ],
        backendAbort.signal,
      ),
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
    const pending = pumpGeneration(
      { first: { type: "tokens", ids: byteIds("abc") }, rest: rest() },
      opts({
        clientSignal: client.signal,
        cancelBackend: async () => release(),
      }),
    );
    client.abort();
    expect(await pending).toMatchObject({ finishReason: "cancelled", completionTokens: 5 });
  });
});
