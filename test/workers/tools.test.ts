/**
 * Tool calling at the edge, against the fake backend (generated text is scripted): every bad input is a
 * 400 naming its field; what is sent to the backend per tool_choice; how the generated text becomes
 * tool_calls (JSON and SSE), content, or text when cut; the response cache keyed by the choice.
 * The real backend and unmodified clients: test/node/e2e-tools.test.ts.
 */
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { GenerateRequest } from "../../contract/wire";
import { FakeBackend } from "./chat-fake-backend";
import { call, chat, newKey, sseEvents } from "./chat-harness";

let key: string;
let backend: FakeBackend;
beforeAll(async () => {
  key = (await newKey(["mistral-tiny"])).key;
});
beforeEach(() => {
  backend = new FakeBackend();
  backend.install();
});

const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const ping = { type: "function", function: { name: "ping" } };
const CALL = '[{"name": "get_weather", "arguments": {"city": "Paris"}}]';
const generated = () => backend.seen.filter((s) => s.path === "/v1/generate").map((s) => s.body as GenerateRequest);

async function expect400(body: Record<string, unknown>, param: string, path = "/v1/chat/completions") {
  const r =
    path === "/v1/chat/completions"
      ? await chat(key, body)
      : await call(path, { method: "POST", key, body: JSON.stringify({ model: "mistral-tiny", ...body }) });
  const j = await r.json();
  expect(r.res.status, JSON.stringify(j)).toBe(400);
  expect(j.error).toMatchObject({ type: "invalid_request_error", param });
  expect(typeof j.error.message).toBe("string");
  expect(generated()).toHaveLength(0);
}

describe("bad tool input is a 400 naming the field", () => {
  const callTurn = {
    role: "assistant",
    content: null,
    tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"x"}' } }],
  };
  it.each([
    [{ tools: [{ type: "function", function: { name: "no spaces" } }] }, "tools[0].function.name"],
    [{ tools: [{ type: "function", function: {} }] }, "tools[0].function.name"],
    [{ tools: [weather, weather] }, "tools[1].function.name"],
    [
      {
        tools: [
          ping,
          {
            type: "function",
            function: { name: "f", parameters: { type: "object", properties: { a: { type: "strin" } } } },
          },
        ],
      },
      "tools[1].function.parameters.properties.a.type",
    ],
    [
      { tools: [{ type: "function", function: { name: "f", parameters: { type: "object", not: {} } } }] },
      "tools[0].function.parameters.not",
    ],
    [{ tools: [{ type: "function", function: { name: "f", parameters: "x" } }] }, "tools[0].function.parameters"],
    [{ tools: [{ type: "code_interpreter" }] }, "tools[0].type"],
    [{ tools: Array.from({ length: 129 }, (_, i) => ({ type: "function", function: { name: `f${i}` } })) }, "tools"],
    [{ tools: {} }, "tools"],
    [{ tools: [weather], tool_choice: "sometimes" }, "tool_choice"],
    [{ tools: [weather], tool_choice: { type: "function", function: { name: "other" } } }, "tool_choice.function.name"],
    [{ tool_choice: "required" }, "tool_choice"],
    [{ tools: [weather], parallel_tool_calls: "no" }, "parallel_tool_calls"],
    [{ tools: [weather], tool_choice: "required", response_format: { type: "json_object" } }, "response_format"],
    [
      {
        messages: [
          { role: "user", content: "x" },
          { role: "tool", content: "r", tool_call_id: "call_1" },
        ],
      },
      "messages[1].tool_call_id",
    ],
    [
      {
        messages: [
          { role: "user", content: "x" },
          { role: "tool", content: "r" },
        ],
      },
      "messages[1].tool_call_id",
    ],
    [
      {
        messages: [
          { role: "user", content: "x" },
          { ...callTurn, tool_calls: [{ id: "a", function: { name: "f", arguments: "{" } }] },
        ],
      },
      "messages[1].tool_calls[0].function.arguments",
    ],
    [
      {
        messages: [
          { role: "user", content: "x" },
          { ...callTurn, tool_calls: [{ function: { name: "f", arguments: "{}" } }] },
        ],
      },
      "messages[1].tool_calls[0].id",
    ],
    [
      {
        messages: [
          { role: "user", content: "x" },
          { ...callTurn, tool_calls: "f" },
        ],
      },
      "messages[1].tool_calls",
    ],
    // A tool result after a plain assistant turn: the template refuses the conversation.
    [
      {
        messages: [
          { role: "user", content: "x" },
          callTurn,
          { role: "tool", content: "r", tool_call_id: "call_1" },
          { role: "assistant", content: "ok" },
          { role: "tool", content: "r", tool_call_id: "call_1" },
        ],
      },
      "messages",
    ],
  ])("%j -> %s", async (body, param) => {
    await expect400(body, param);
  });

  it("/v1/tokenize takes the same fields and refuses the same way", async () => {
    await expect400(
      { messages: [{ role: "user", content: "x" }], tools: [weather, weather] },
      "tools[1].function.name",
      "/v1/tokenize",
    );
    await expect400({ prompt: "x", tools: [weather] }, "tools", "/v1/tokenize");
  });
});

describe("what the backend is asked for", () => {
  const tokenize = async (body: Record<string, unknown>) =>
    (
      await (
        await call("/v1/tokenize", {
          method: "POST",
          key,
          body: JSON.stringify({ model: "mistral-tiny", messages: [{ role: "user", content: "Hi there" }], ...body }),
        })
      ).json()
    ).tokens as number[];

  it("required: the call grammar from the first token, the prompt ending with the marker; the ids are /v1/tokenize's", async () => {
    backend.defaultText = CALL;
    const r = await chat(key, { tools: [weather, ping], tool_choice: "required" });
    expect(r.res.status).toBe(200);
    const [g] = generated();
    expect(g!.format_trigger).toBeUndefined();
    expect(g!.response_format).toMatchObject({
      type: "json_schema",
      schema: { type: "array", minItems: 1, maxItems: 8 },
    });
    expect(g!.input_ids).toEqual(await tokenize({ tools: [weather, ping], tool_choice: "required" }));
    expect((await r.json()).usage.prompt_tokens).toBe(g!.input_ids.length);
  });

  it("auto: format_trigger is the marker and response_format the call grammar; none: neither, definitions kept", async () => {
    backend.defaultText = "Hello.";
    await chat(key, { tools: [weather] });
    await chat(key, { tools: [weather], tool_choice: "none" });
    await chat(key, {});
    const [auto, none, plain] = generated();
    expect(auto!.format_trigger).toBe("[TOOL_CALLS]");
    expect(auto!.response_format?.type).toBe("json_schema");
    expect(none!.format_trigger).toBeUndefined();
    expect(none!.response_format).toBeUndefined();
    expect(none!.input_ids).toEqual(auto!.input_ids);
    expect(none!.input_ids.length).toBeGreaterThan(plain!.input_ids.length);
  });

  it("a named choice or parallel_tool_calls false allow exactly one call", async () => {
    backend.defaultText = CALL;
    await chat(key, { tools: [weather, ping], tool_choice: { type: "function", function: { name: "ping" } } });
    await chat(key, { tools: [weather, ping], tool_choice: "any", parallel_tool_calls: false });
    const [named, single] = generated();
    expect(named!.response_format).toMatchObject({
      schema: { maxItems: 1, items: { properties: { name: { const: "ping" } } } },
    });
    expect(single!.response_format).toMatchObject({ schema: { maxItems: 1 } });
  });
});

describe("answers", () => {
  it("JSON: tool_calls with a 9-character id, content null, finish_reason tool_calls", async () => {
    backend.defaultText = ` ${CALL}`;
    const r = await chat(key, { tools: [weather], tool_choice: "required" });
    const j = await r.json();
    const choice = j.choices[0];
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toHaveLength(1);
    const tc = choice.message.tool_calls[0];
    expect(tc.id).toMatch(/^[a-zA-Z0-9]{9}$/);
    expect(tc).toMatchObject({ type: "function", function: { name: "get_weather" } });
    expect(JSON.parse(tc.function.arguments)).toEqual({ city: "Paris" });
  });

  it("auto: the text before the marker is the content", async () => {
    backend.defaultText = `Let me look.[TOOL_CALLS] ${CALL}`;
    const j = await (await chat(key, { tools: [weather] })).json();
    expect(j.choices[0].message.content).toBe("Let me look.");
    expect(j.choices[0].finish_reason).toBe("tool_calls");
    expect(j.choices[0].message.tool_calls[0].function.name).toBe("get_weather");
  });

  it("none: never a call, even when the text looks like one", async () => {
    backend.defaultText = `[TOOL_CALLS] ${CALL}`;
    const j = await (await chat(key, { tools: [weather], tool_choice: "none" })).json();
    expect(j.choices[0].message).toEqual({ role: "assistant", content: `[TOOL_CALLS] ${CALL}` });
    expect(j.choices[0].finish_reason).toBe("stop");
  });

  it("a call cut by max_tokens is text content with finish_reason length, never a call", async () => {
    backend.defaultText = CALL;
    const j = await (await chat(key, { tools: [weather], tool_choice: "required", max_tokens: 20 })).json();
    expect(j.choices[0].finish_reason).toBe("length");
    expect(j.choices[0].message.tool_calls).toBeUndefined();
    expect(j.choices[0].message.content).toBe(CALL.slice(0, 20));
  });

  it("SSE: the first delta of each call carries index, id, type and name; arguments in fragments; finish tool_calls; usage", async () => {
    backend.defaultText = `[{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "ping", "arguments": {}}]`;
    const r = await chat(key, {
      tools: [weather, ping],
      tool_choice: "required",
      stream: true,
      stream_options: { include_usage: true },
    });
    const events = sseEvents(await r.text()) as Array<Record<string, any>>;
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1);
    const deltas = chunks.flatMap((c) => c.choices.flatMap((ch: any) => ch.delta.tool_calls ?? []));
    const firsts = deltas.filter((d) => d.id !== undefined);
    expect(firsts.map((d) => [d.index, d.type, d.function.name, d.function.arguments])).toEqual([
      [0, "function", "get_weather", ""],
      [1, "function", "ping", ""],
    ]);
    const args = (i: number) =>
      deltas
        .filter((d) => d.index === i)
        .map((d) => d.function.arguments)
        .join("");
    expect(JSON.parse(args(0))).toEqual({ city: "Paris" });
    expect(args(1)).toBe("{}");
    expect(deltas.filter((d) => d.index === 0 && d.id === undefined).length).toBeGreaterThan(1); // fragments
    for (const d of deltas) expect(typeof d.function.name).toBe("string"); // Mistral's SDK requires it
    const finishes = chunks.flatMap((c) => c.choices.map((ch: any) => ch.finish_reason)).filter(Boolean);
    expect(finishes).toEqual(["tool_calls"]);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { completion_tokens: expect.any(Number) } });
  });

  it("history: an assistant tool_calls turn and its results are accepted (OpenAI and Mistral shapes)", async () => {
    backend.defaultText = "It is sunny.";
    const r = await chat(key, {
      tools: [weather],
      messages: [
        { role: "user", content: "Weather in Paris and Rome?" },
        {
          role: "assistant",
          content: "",
          tool_calls: [
            { id: "call_abc123", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } },
            { id: "D681PevKs", function: { name: "get_weather", arguments: { city: "Rome" } } },
          ],
        },
        { role: "tool", tool_call_id: "call_abc123", content: "sunny" },
        { role: "tool", name: "get_weather", tool_call_id: "D681PevKs", content: [{ type: "text", text: "rain" }] },
      ],
    });
    const j = await r.json();
    expect(r.res.status, JSON.stringify(j)).toBe(200);
    expect(j.choices[0].message.content).toBe("It is sunny.");
  });

  it("the response cache keys on the tool choice and replays calls", async () => {
    backend.defaultText = CALL;
    const opts = { headers: { "x-cache-ttl": "60" } };
    const body = { tools: [weather], temperature: 0, messages: [{ role: "user", content: "cache me with tools" }] };
    const first = await chat(key, { ...body, tool_choice: "required" }, opts);
    expect(first.res.headers.get("x-cache")).toBe("MISS");
    await first.settled();
    const again = await chat(key, { ...body, tool_choice: "required" }, opts);
    expect(again.res.headers.get("x-cache")).toBe("HIT");
    const j = await again.json();
    expect(j.choices[0].finish_reason).toBe("tool_calls");
    expect(JSON.parse(j.choices[0].message.tool_calls[0].function.arguments)).toEqual({ city: "Paris" });
    const streamed = await chat(key, { ...body, tool_choice: "required", stream: true }, opts);
    const evs = sseEvents(await streamed.text()) as Array<Record<string, any>>;
    expect(
      evs.some((e) => typeof e !== "string" && e.choices[0]?.delta.tool_calls?.[0]?.function.name === "get_weather"),
    ).toBe(true);
    // auto gets the same prompt ids but another answer: its own entry.
    const auto = await chat(key, { ...body, tool_choice: "auto" }, opts);
    expect(auto.res.headers.get("x-cache")).toBe("MISS");
    const none = await chat(key, { ...body, tool_choice: "none" }, opts);
    expect(none.res.headers.get("x-cache")).toBe("MISS");
  });
});
