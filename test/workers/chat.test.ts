import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { WIRE_VERSION, WIRE_VERSION_UNSUPPORTED, type GenerateRequest } from "../../contract/wire";
import { SAFE_PROMPT } from "../../worker/api/chat-request";
import { applyChatTemplate, encode } from "../../worker/tokenizer";
import { FakeBackend, byteIds } from "./chat-fake-backend";
import { call, chat, newKey, sseEvents, tiersJson, usageRecord } from "./chat-harness";

let key: string;
let backend: FakeBackend;
const messages = [{ role: "user" as const, content: "Hi there" }];
const gen = () => backend.seen.filter((s) => s.path === "/v1/generate").map((s) => s.body as GenerateRequest);

beforeAll(async () => {
  key = (await newKey()).key;
});
beforeEach(() => {
  backend = new FakeBackend();
  backend.install();
});

describe("usage.cost_micros", () => {
  // PRICE (chat-harness): 140000 / 14000 / 420000 µ€ per million tokens = units per token.
  const ceilMicros = (units: bigint) => Number((units + 999_999n) / 1_000_000n);

  it("chat (both modes) reports the exact cost rounded up to whole micro-euros, and the ledger agrees", async () => {
    backend.defaultText = "x".repeat(10);
    for (const stream of [false, true]) {
      const r = await chat(key, { messages, stream, stream_options: { include_usage: true }, max_tokens: 8 });
      const body = await r.text();
      const u = stream ? (sseEvents(body).at(-2) as any).usage : JSON.parse(body).usage;
      const prompt = applyChatTemplate(messages).length;
      const units = BigInt(prompt) * 140000n + 8n * 420000n;
      expect(u).toMatchObject({ prompt_tokens: prompt, completion_tokens: 8 });
      expect(u.cost_micros).toBe(ceilMicros(units));
      expect(Number.isInteger(u.cost_micros)).toBe(true);
      const rec = await usageRecord(r.res.headers.get("x-request-id")!);
      expect(BigInt(rec!.cost_units)).toBe(units);
    }
  });

  it("embeddings report it too", async () => {
    const r = await call("/v1/embeddings", {
      method: "POST",
      key,
      body: JSON.stringify({ model: "mistral-embed", input: "hello" }),
    });
    const j = await r.json();
    const tokens = 1 + encode("hello").length;
    expect(j.usage).toEqual({
      prompt_tokens: tokens,
      total_tokens: tokens,
      cost_micros: ceilMicros(BigInt(tokens) * 100000n),
    });
  });
});

describe("non-streaming chat", () => {
  it("returns an OpenAI/Mistral completion with edge token counts, and records usage", async () => {
    const r = await chat(key, { messages });
    const j = await r.json();
    expect(r.res.status).toBe(200);
    const prompt = applyChatTemplate(messages);
    const completionIds = byteIds(backend.defaultText).length; // the backend neither streams nor counts EOS
    expect(j).toMatchObject({
      object: "chat.completion",
      model: "mistral-tiny",
      choices: [{ index: 0, message: { role: "assistant", content: backend.defaultText }, finish_reason: "stop" }],
      usage: {
        prompt_tokens: prompt.length,
        completion_tokens: completionIds,
        total_tokens: prompt.length + completionIds,
        prompt_tokens_details: { cached_tokens: 0 },
      },
    });
    expect(j.id).toMatch(/^cmpl-[0-9a-f]{32}$/);
    expect(Number.isInteger(j.created)).toBe(true);

    const [sent] = gen();
    expect(sent.input_ids).toEqual(prompt);
    expect(sent.model).toBe("tiny");
    expect(sent.stop_token_ids).toEqual([2]);
    expect(sent.max_tokens).toBe(256 - prompt.length); // default: the remaining context
    expect(sent.temperature).toBe(0.7);
    expect(sent.cache_salt).toMatch(/.{8,}/);
    expect(sent.request_id).toBe(r.res.headers.get("x-request-id"));
    expect(backend.seen[0].auth).toBe("Bearer test-backend-token-0123456789abcdef");

    const rec = await usageRecord(r.res.headers.get("x-request-id")!);
    expect(rec).toMatchObject({
      status: "ok",
      prompt_tokens: prompt.length,
      completion_tokens: completionIds,
      cached_tokens: 0,
    });
    expect(BigInt(rec!.cost_units)).toBeGreaterThan(0n);
  });

  it("passes sampling params, OpenAI seed / Mistral random_seed, clamps max_tokens to the context", async () => {
    await (await chat(key, { temperature: 0, top_p: 0.9, seed: 42, max_tokens: 100_000 })).text();
    await (await chat(key, { random_seed: 7, max_tokens: 5 })).text();
    const [a, b] = gen();
    expect(a).toMatchObject({
      temperature: 0,
      top_p: 0.9,
      seed: 42,
      max_tokens: 256 - applyChatTemplate(messages).length,
    });
    expect(b).toMatchObject({ seed: 7, max_tokens: 5 });
  });

  it("max_tokens reached -> finish_reason length", async () => {
    const j = await (await chat(key, { max_tokens: 4 })).json();
    expect(j.choices[0]).toMatchObject({
      finish_reason: "length",
      message: { content: backend.defaultText.slice(0, 4) },
    });
    expect(j.usage.completion_tokens).toBe(4);
  });

  it("text content parts are joined; safe_prompt prepends Mistral's guardrail", async () => {
    await (
      await chat(key, {
        messages: [
          {
            role: "user",
            content: [
              { type: "text", text: "Hi " },
              { type: "text", text: "there" },
            ],
          },
        ],
      })
    ).text();
    await (
      await chat(key, { safe_prompt: true, messages: [{ role: "developer", content: "Be brief." }, ...messages] })
    ).text();
    const [parts, safe] = gen();
    expect(parts.input_ids).toEqual(applyChatTemplate(messages));
    expect(safe.input_ids).toEqual(
      applyChatTemplate([
        { role: "system", content: SAFE_PROMPT },
        { role: "system", content: "Be brief." },
        ...messages,
      ]),
    );
  });

  it("a prompt over the context window is a 400 with the numbers, before any backend call", async () => {
    const long = "word ".repeat(300);
    const r = await chat(key, { messages: [{ role: "user", content: long }] });
    const j = await r.json();
    expect(r.res.status).toBe(400);
    expect(j.error).toMatchObject({
      code: "context_length_exceeded",
      param: "messages",
      type: "invalid_request_error",
    });
    expect(j.error.message).toContain("256");
    expect(j.error.message).toContain(String(applyChatTemplate([{ role: "user", content: long }]).length));
    expect(backend.seen).toHaveLength(0);
  });

  it("stop strings cut the text at the edge; the backend is cancelled and drained, and bills what it generated", async () => {
    for (const h of ["r1.test", "r2.test", "r3.test"])
      backend.set(h, { kind: "ok", text: "Hello STOP world and more".repeat(10), chunk: 1, lag: 3, delayMs: 2 });
    const r = await chat(key, { stop: ["STOP", "zzz"] });
    const j = await r.json();
    const id = r.res.headers.get("x-request-id")!;
    expect(j.choices[0]).toMatchObject({ message: { content: "Hello " }, finish_reason: "stop" });
    expect(backend.cancels).toEqual([id]);
    const truth = backend.finished.get(id)!;
    expect(truth.finish).toBe("cancelled");
    // Tokens generated after the match (the cancel's lag) are billed too: the backend's count, exactly.
    expect(truth.completion).toBeGreaterThanOrEqual("Hello STOP".length + 3);
    expect(j.usage.completion_tokens).toBe(truth.completion);
    expect(await usageRecord(id)).toMatchObject({ status: "ok", completion_tokens: truth.completion });
  });

  it("cached_tokens from the backend are reported and recorded", async () => {
    for (const h of ["r1.test", "r2.test", "r3.test"]) backend.set(h, { kind: "ok", cached: 4 });
    const r = await chat(key, {});
    const j = await r.json();
    expect(j.usage.prompt_tokens_details.cached_tokens).toBe(4);
    expect(await usageRecord(r.res.headers.get("x-request-id")!)).toMatchObject({ cached_tokens: 4 });
  });
});

describe("streaming chat", () => {
  it("role chunk, content deltas, final chunk with finish_reason and usage, [DONE]", async () => {
    const r = await chat(key, { stream: true });
    expect(r.res.headers.get("content-type")).toContain("text/event-stream");
    const events = sseEvents(await r.text()) as any[];
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1);
    expect(chunks[0].choices[0]).toEqual({ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null });
    for (const c of chunks)
      expect(c).toMatchObject({ object: "chat.completion.chunk", id: chunks[0].id, model: "mistral-tiny" });
    expect(chunks.map((c) => c.choices[0].delta.content).join("")).toBe(backend.defaultText);
    const last = chunks.at(-1);
    expect(last.choices[0].finish_reason).toBe("stop");
    expect(last.usage).toMatchObject({
      prompt_tokens: applyChatTemplate(messages).length,
      completion_tokens: byteIds(backend.defaultText).length,
    });
    expect(chunks.slice(0, -1).every((c) => c.usage === undefined && c.choices[0].finish_reason === null)).toBe(true);
    expect(await usageRecord(r.res.headers.get("x-request-id")!)).toMatchObject({ status: "ok" });
  });

  it("stream_options.include_usage adds OpenAI's final usage chunk with choices: []", async () => {
    const events = sseEvents(
      await (await chat(key, { stream: true, stream_options: { include_usage: true } })).text(),
    ) as any[];
    const extra = events.at(-2);
    expect(extra.choices).toEqual([]);
    expect(extra.usage.total_tokens).toBe(extra.usage.prompt_tokens + extra.usage.completion_tokens);
    expect(events.at(-3).choices[0].finish_reason).toBe("stop");
  });

  it("a stop string split across deltas is held back and never leaks", async () => {
    for (const h of ["r1.test", "r2.test", "r3.test"]) backend.set(h, { kind: "ok", text: "abc<END>def", chunk: 1 });
    const events = sseEvents(await (await chat(key, { stream: true, stop: "<END>" })).text()) as any[];
    const text = events
      .slice(0, -1)
      .map((c) => c.choices[0]?.delta.content ?? "")
      .join("");
    expect(text).toBe("abc");
    expect(events.at(-2).choices[0].finish_reason).toBe("stop");
  });

  it("a backend failure after the first token: finish_reason error chunk with usage, then an error event", async () => {
    for (const h of ["r1.test", "r2.test", "r3.test"]) backend.set(h, { kind: "break-after", text: "partial" });
    const r = await chat(key, { stream: true });
    const events = sseEvents(await r.text()) as any[];
    expect(events).not.toContain("[DONE]");
    const err = events.at(-1);
    expect(err.error).toMatchObject({ type: "api_error", code: "backend_error" });
    expect(JSON.stringify(err)).not.toMatch(/r\d\.test|reset/);
    const fin = events.at(-2);
    expect(fin.choices[0].finish_reason).toBe("error");
    expect(fin.usage.completion_tokens).toBe("partial".length);
    expect(gen()).toHaveLength(1); // no retry once tokens were delivered
    expect(await usageRecord(r.res.headers.get("x-request-id")!)).toMatchObject({
      status: "error",
      completion_tokens: "partial".length,
    });
  });
});

describe("replica failures before the first token", () => {
  const three = tiersJson();

  it("a down / 5xx / erroring replica is skipped for another one", async () => {
    backend
      .set("r1.test", { kind: "down" })
      .set("r2.test", { kind: "status", status: 503 })
      .set("r3.test", { kind: "error-first" });
    // Exactly one of the three works in each round; every permutation of failures must still succeed.
    for (const ok of ["r1.test", "r2.test", "r3.test"]) {
      backend.set(ok, { kind: "ok" });
      const r = await chat(key, {}, { tiers: three });
      expect(r.res.status, await r.text()).toBe(200);
      backend.set(ok, { kind: "error-first" });
    }
  });

  it("all replicas failing -> 503 with Retry-After, nothing charged", async () => {
    for (const h of ["r1.test", "r2.test", "r3.test"]) backend.set(h, { kind: "status", status: 500 });
    const r = await chat(key, {});
    const j = await r.json();
    expect(r.res.status).toBe(503);
    expect(r.res.headers.get("retry-after")).toBe("2");
    expect(j.error.type).toBe("service_unavailable");
    expect(JSON.stringify(j)).not.toMatch(/\.test|nope|HTTP/);
    expect(await usageRecord(r.res.headers.get("x-request-id")!)).toMatchObject({
      status: "error",
      prompt_tokens: 0,
      completion_tokens: 0,
      cost_units: 0,
    });
  });

  it("every backend call states the wire version; a replica that does not speak it is a 502 backend_incompatible, nothing charged", async () => {
    const ok = await chat(key, {});
    expect(ok.res.status).toBe(200);
    expect(backend.seen.map((s) => s.wire)).toEqual(backend.seen.map(() => String(WIRE_VERSION)));
    for (const h of ["r1.test", "r2.test", "r3.test"])
      backend.set(h, { kind: "status", status: 400, code: WIRE_VERSION_UNSUPPORTED });
    const before = backend.seen.length;
    const r = await chat(key, {});
    const j = await r.json();
    expect(r.res.status).toBe(502);
    expect(j.error).toMatchObject({ type: "api_error", code: "backend_incompatible" });
    expect(JSON.stringify(j)).not.toMatch(/\.test|nope|HTTP|wire_version/);
    expect(backend.seen.length - before).toBe(1); // a deploy mismatch is not retried on another replica
    expect(await usageRecord(r.res.headers.get("x-request-id")!)).toMatchObject({
      status: "error",
      completion_tokens: 0,
      cost_units: 0,
    });
  });

  it("non-streaming failure after generation started -> 502, nothing charged", async () => {
    for (const h of ["r1.test", "r2.test", "r3.test"]) backend.set(h, { kind: "break-after", text: "partial" });
    const r = await chat(key, {});
    expect(r.res.status).toBe(502);
    expect((await r.json()).error.type).toBe("api_error");
    expect(await usageRecord(r.res.headers.get("x-request-id")!)).toMatchObject({
      status: "error",
      completion_tokens: 0,
    });
  });
});

describe("models and embeddings", () => {
  it("GET /v1/models lists the key's models with their context length", async () => {
    const limited = await newKey(["mistral-tiny"]);
    const j = await (await call("/v1/models", { key: limited.key })).json();
    expect(j).toEqual({
      object: "list",
      data: [
        {
          id: "mistral-tiny",
          object: "model",
          created: expect.any(Number),
          owned_by: "moe-edge",
          type: "base",
          capabilities: expect.objectContaining({ completion_chat: true }),
          max_context_length: 256,
          context_length: 256,
        },
      ],
    });
    expect((await call("/v1/models/mistral-tiny", { key: limited.key })).res.status).toBe(200);
    expect((await call("/v1/models/mistral-small", { key: limited.key })).res.status).toBe(404);
  });

  it("POST /v1/embeddings: float and base64 (float32 LE), BOS + edge tokens counted", async () => {
    const input = ["Hello world", "Bonjour"];
    const r = await call("/v1/embeddings", {
      method: "POST",
      key,
      body: JSON.stringify({ model: "mistral-embed", input }),
    });
    const j = await r.json();
    expect(r.res.status).toBe(200);
    const tokens = input.map((s) => 1 + encode(s).length);
    expect(j).toMatchObject({
      id: expect.stringMatching(/^embd-/),
      object: "list",
      model: "mistral-embed",
      usage: { prompt_tokens: tokens[0] + tokens[1], total_tokens: tokens[0] + tokens[1] },
    });
    expect(j.data.map((d: any) => [d.object, d.index])).toEqual([
      ["embedding", 0],
      ["embedding", 1],
    ]);
    expect(j.data[0].embedding[0]).toBeCloseTo(tokens[0] / 10);
    const sent = backend.seen[0].body as { inputs: number[][] };
    expect(sent.inputs[0]).toEqual([1, ...encode("Hello world")]);

    const b = await (
      await call("/v1/embeddings", {
        method: "POST",
        key,
        body: JSON.stringify({ model: "mistral-embed", input: "Hello world", encoding_format: "base64" }),
      })
    ).json();
    const bytes = Uint8Array.from(atob(b.data[0].embedding), (ch) => ch.charCodeAt(0));
    const floats = new Float32Array(bytes.buffer);
    expect([...floats]).toEqual([...new Float32Array(j.data[0].embedding)]);
  });

  it("embeddings: token-id input is sent as given; over-long input is a 400", async () => {
    await (
      await call("/v1/embeddings", {
        method: "POST",
        key,
        body: JSON.stringify({ model: "mistral-embed", input: [5, 6, 7] }),
      })
    ).text();
    expect((backend.seen[0].body as { inputs: number[][] }).inputs).toEqual([[5, 6, 7]]);
    const r = await call("/v1/embeddings", {
      method: "POST",
      key,
      body: JSON.stringify({ model: "mistral-embed", input: ["x ".repeat(100)] }),
    });
    expect(r.res.status).toBe(400);
    expect((await r.json()).error).toMatchObject({ code: "context_length_exceeded", param: "input[0]" });
  });
});
