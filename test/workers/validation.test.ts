import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FakeBackend } from "./chat-fake-backend";
import { call, chat, newKey } from "./chat-harness";

let key: string;
let backend: FakeBackend;
beforeAll(async () => {
  key = (await newKey(["mistral-tiny", "mistral-embed"])).key;
});
beforeEach(() => {
  backend = new FakeBackend();
  backend.install();
});

async function expect400(body: Record<string, unknown>, param: string | null, code?: string) {
  const r = await chat(key, body);
  const j = await r.json();
  expect(r.res.status, JSON.stringify(j)).toBe(400);
  expect(j.error.type).toBe("invalid_request_error");
  expect(j.error.param).toBe(param);
  if (code) expect(j.error.code).toBe(code);
  expect(typeof j.error.message).toBe("string");
  expect(r.res.headers.get("x-request-id")).toMatch(/^req_/);
  expect(backend.seen).toHaveLength(0);
}

describe("chat request validation", () => {
  it.each([
    [{ model: 7 }, "model"],
    [{ messages: [] }, "messages"],
    [{ messages: "hi" }, "messages"],
    [{ messages: [{ role: "user" }] }, "messages[0].content"],
    [{ messages: [{ role: "wizard", content: "x" }] }, "messages[0].role"],
    [
      { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] },
      "messages[0].content[0]",
    ],
    [{ temperature: 3 }, "temperature"],
    [{ temperature: "hot" }, "temperature"],
    [{ top_p: 1.5 }, "top_p"],
    [{ max_tokens: 0 }, "max_tokens"],
    [{ max_tokens: 1.5 }, "max_tokens"],
    [{ stream: "yes" }, "stream"],
    [{ random_seed: -1 }, "random_seed"],
    [{ seed: "x" }, "seed"],
    [{ stop: 5 }, "stop"],
    [{ stop: [""] }, "stop[0]"],
    [{ stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }, "stop"],
    [{ safe_prompt: "yes" }, "safe_prompt"],
    [{ n: 2 }, "n"],
    [{ presence_penalty: 0.5 }, "presence_penalty"],
    [{ frequency_penalty: -1 }, "frequency_penalty"],
    [{ frequency_penalty: 9 }, "frequency_penalty"],
    [{ response_format: { type: "xml" } }, "response_format.type"],
    [{ response_format: { type: "json_schema" } }, "response_format.json_schema"],
    [
      {
        response_format: {
          type: "json_schema",
          json_schema: { name: "x", schema: { type: "string", format: "uri" } },
        },
      },
      "response_format.json_schema.schema",
    ],
    [{ top_logprobs: 2 }, "top_logprobs"],
    [{ logprobs: true, top_logprobs: 21 }, "top_logprobs"],
    [{ tools: [{ type: "function", function: { name: "f g" } }] }, "tools[0].function.name"],
    [{ messages: [{ role: "tool", content: "x" }] }, "messages[0].tool_call_id"],
    [{ stream_options: { include_usage: "y" } }, "stream_options.include_usage"],
  ])("%j -> 400 param %s", async (body, param) => {
    await expect400(body, param);
  });

  it("a missing model is a 400 naming model", async () => {
    const r = await call("/v1/chat/completions", {
      method: "POST",
      key,
      body: JSON.stringify({ messages: [{ role: "user", content: "x" }] }),
    });
    expect(r.res.status).toBe(400);
    expect((await r.json()).error).toMatchObject({ param: "model", type: "invalid_request_error" });
  });

  it("a body that is not JSON is a 400, not a 500", async () => {
    const r = await call("/v1/chat/completions", { method: "POST", key, body: "{nope" });
    expect(r.res.status).toBe(400);
    expect((await r.json()).error.type).toBe("invalid_request_error");
  });

  it("an unknown model and a real model outside the key's plan get the same 404 model_not_found (no probing)", async () => {
    let r = await chat(key, { model: "mistral-nope" });
    expect(r.res.status).toBe(404);
    const unknown = (await r.json()).error;
    expect(unknown).toMatchObject({ code: "model_not_found", param: "model" });
    r = await chat(key, { model: "mistral-small" });
    expect(r.res.status).toBe(404);
    const outside = (await r.json()).error;
    expect({ ...outside, message: outside.message.replace("mistral-small", "X") }).toEqual({
      ...unknown,
      message: unknown.message.replace("mistral-nope", "X"),
    });
  });

  it("an embedding model cannot chat", async () => {
    await expect400({ model: "mistral-embed" }, "model", "invalid_model");
  });

  it("a malformed x-cache-ttl header is a 400", async () => {
    const r = await chat(key, {}, { headers: { "x-cache-ttl": "forever" } });
    expect(r.res.status).toBe(400);
    expect((await r.json()).error.param).toBe("x-cache-ttl");
  });

  it("without a key: 401 in the OpenAI shape", async () => {
    const r = await call("/v1/chat/completions", { method: "POST", body: "{}" });
    expect(r.res.status).toBe(401);
    expect((await r.json()).error.type).toBe("authentication_error");
  });
});

describe("accepted but ignored or neutral fields", () => {
  it("unknown fields, nulls, zero penalties, n=1, text response_format and empty tools pass", async () => {
    const r = await chat(key, {
      langchain_extra: { a: 1 },
      user: "u-1",
      logit_bias: null,
      temperature: null,
      top_p: null,
      max_tokens: null,
      n: 1,
      presence_penalty: 0,
      frequency_penalty: 0,
      response_format: { type: "text" },
      tools: [],
      tool_choice: "none",
      stream: false,
      stream_options: null,
      seed: null,
    });
    expect(r.res.status, await r.text()).toBe(200);
  });
});

describe("empty assistant turns", () => {
  it("an earlier empty answer is accepted and sent as just EOS after its [/INST]", async () => {
    const messages = [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "" },
      { role: "user", content: "Again?" },
    ];
    const r = await chat(key, { messages, max_tokens: 3 });
    expect(r.res.status, await r.text()).toBe(200);
    const sent = backend.seen.find((s) => s.path === "/v1/generate")!.body as { input_ids: number[] };
    expect(sent.input_ids).toEqual([
      1, 733, 16289, 28793, 15359, 733, 28748, 16289, 28793, 2, 733, 16289, 28793, 9706, 28804, 733, 28748, 16289,
      28793,
    ]);
  });
});

describe("assistant prefix (Mistral's prefix: true)", () => {
  it("continues a final assistant message with prefix: true; without it a trailing assistant message is a 400", async () => {
    const messages = [
      { role: "user", content: "Name a colour." },
      { role: "assistant", content: "The colour is", prefix: true },
    ];
    const ok = await chat(key, { messages });
    expect(ok.res.status, await ok.text()).toBe(200);
    const sent = backend.seen[0].body as { input_ids: number[] };
    expect(sent.input_ids.at(-1)).not.toBe(2); // no EOS: the model continues the assistant turn
    const bad = await chat(key, { messages: [messages[0], { role: "assistant", content: "The colour is" }] });
    expect(bad.res.status).toBe(400);
  });
});

describe("other endpoints' errors", () => {
  it("embeddings: bad input is a 400 naming input", async () => {
    const r = await call("/v1/embeddings", {
      method: "POST",
      key,
      body: JSON.stringify({ model: "mistral-embed", input: [] }),
    });
    expect(r.res.status).toBe(400);
    expect((await r.json()).error.param).toBe("input");
  });

  it.each([[[[1, "x"]]], [[[1, -1]]], [["ok", 5]], [[[]]]])(
    "embeddings: input %j names its param in chat's style (input[i], never input.0)",
    async (input) => {
      const r = await call("/v1/embeddings", {
        method: "POST",
        key,
        body: JSON.stringify({ model: "mistral-embed", input }),
      });
      expect(r.res.status).toBe(400);
      expect((await r.json()).error.param).toMatch(/^input(\[\d+\])*$/);
    },
  );

  it("embeddings: a chat model is refused", async () => {
    const r = await call("/v1/embeddings", {
      method: "POST",
      key,
      body: JSON.stringify({ model: "mistral-tiny", input: "x" }),
    });
    expect(r.res.status).toBe(400);
    expect((await r.json()).error).toMatchObject({ param: "model", code: "invalid_model" });
  });

  it("a broken TIERS config is a generic 500 that leaks nothing", async () => {
    const r = await chat(key, {}, { tiers: '{"mistral-tiny": {"backends": ["not a url"]}}' });
    expect(r.res.status).toBe(500);
    const body = await r.text();
    expect(JSON.parse(body).error.type).toBe("api_error");
    expect(body).not.toMatch(/backends|not a url|TIERS/);
  });
});
