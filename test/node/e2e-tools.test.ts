/**
 * Tool calling through the real stack (launcher -> wrangler dev -> backend -> ONNX Runtime) with the
 * unmodified openai SDK, at temperature 1 on the random-weight dev model: every call that was not cut by
 * max_tokens must be well-formed, name an allowed function and validate (ajv) against its schema; billing
 * and bad input. The other clients: e2e-tools-clients.test.ts.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { callProblem, fn, messages, model, TOOLS } from "./helpers/tool-fixtures";
import { type Stack, useSharedStack } from "./helpers/stack";

let stack: Stack;
let openai: OpenAI;

beforeAll(async () => {
  stack = await useSharedStack();
  openai = new OpenAI({ baseURL: `${stack.base}/v1`, apiKey: stack.apiKey, maxRetries: 0 });
}, 300_000);

afterAll(async () => {
  await stack?.stop();
});

describe("openai SDK", () => {
  const choices: Array<[string, OpenAI.ChatCompletionToolChoiceOption, string[]]> = [
    ["required", "required", TOOLS.map((t) => t.function.name)],
    ["named", { type: "function", function: { name: "make_person" } }, ["make_person"]],
  ];

  it.each(choices)("%s, not streamed: every call not cut by max_tokens is valid", async (_, toolChoice, allowed) => {
    let calls = 0;
    let cut = 0;
    for (let i = 0; i < 8; i += 4) {
      await Promise.all(
        [0, 1, 2, 3].map(async (k) => {
          const r = await openai.chat.completions.create({
            model,
            messages,
            tools: TOOLS,
            tool_choice: toolChoice,
            temperature: 1,
            seed: 500 + i + k,
            max_tokens: 150,
          });
          const c = r.choices[0]!;
          if (c.finish_reason === "length") {
            cut++;
            expect(c.message.tool_calls ?? []).toHaveLength(0);
            return;
          }
          expect(c.finish_reason).toBe("tool_calls");
          const list = c.message.tool_calls!;
          expect(list.length).toBeGreaterThanOrEqual(1);
          if (typeof toolChoice === "object") expect(list).toHaveLength(1);
          for (const tc of list) {
            expect(tc.type).toBe("function");
            if (tc.type !== "function") continue;
            expect(tc.id).toMatch(/^[A-Za-z0-9]{9}$/);
            expect(callProblem(tc.function.name, JSON.parse(tc.function.arguments), allowed)).toBeNull();
            calls++;
          }
        }),
      );
    }
    console.log(`e2e tools (${_}, T=1, max_tokens 150): ${calls} valid calls, ${cut}/8 cut by max_tokens`);
    expect(calls).toBeGreaterThanOrEqual(4);
  });

  it("required, streamed: deltas assemble into valid calls (the SDK's own accumulator), usage included", async () => {
    let calls = 0;
    for (const seed of [11, 12, 13, 14]) {
      const stream = openai.chat.completions.stream({
        model,
        messages,
        tools: TOOLS,
        tool_choice: "required",
        parallel_tool_calls: false,
        temperature: 1,
        seed,
        max_tokens: 150,
        stream_options: { include_usage: true },
      });
      const final = await stream.finalChatCompletion();
      expect(final.usage?.completion_tokens).toBeGreaterThan(0);
      const c = final.choices[0]!;
      if (c.finish_reason === "length") continue;
      expect(c.finish_reason).toBe("tool_calls");
      expect(c.message.tool_calls).toHaveLength(1);
      for (const tc of c.message.tool_calls!) {
        if (tc.type !== "function") continue;
        expect(
          callProblem(
            tc.function.name,
            JSON.parse(tc.function.arguments),
            TOOLS.map((t) => t.function.name),
          ),
        ).toBeNull();
        calls++;
      }
    }
    expect(calls).toBeGreaterThanOrEqual(1);
  });

  it("none never calls, streamed or not (the definitions are still billed)", async () => {
    for (const stream of [false, true]) {
      for (const seed of [1, 2, 3]) {
        const body = {
          model,
          messages,
          tools: TOOLS,
          tool_choice: "none" as const,
          temperature: 1,
          seed,
          max_tokens: 40,
        };
        if (stream) {
          const s = await openai.chat.completions.create({ ...body, stream: true });
          for await (const chunk of s) {
            for (const ch of chunk.choices) {
              expect(ch.delta.tool_calls).toBeUndefined();
              if (ch.finish_reason) expect(ch.finish_reason).not.toBe("tool_calls");
            }
          }
        } else {
          const r = await openai.chat.completions.create(body);
          expect(r.choices[0]!.message.tool_calls).toBeUndefined();
          expect(typeof r.choices[0]!.message.content).toBe("string");
          expect(r.choices[0]!.finish_reason).not.toBe("tool_calls");
        }
      }
    }
  });

  it("auto: plain text, or calls that validate (whichever the backend's trigger allows)", async () => {
    for (const seed of [21, 22, 23, 24]) {
      const r = await openai.chat.completions.create({
        model,
        messages,
        tools: TOOLS,
        temperature: 1,
        seed,
        max_tokens: 60,
      });
      const c = r.choices[0]!;
      if (c.finish_reason === "tool_calls") {
        for (const tc of c.message.tool_calls!) {
          if (tc.type !== "function") continue;
          expect(
            callProblem(
              tc.function.name,
              JSON.parse(tc.function.arguments),
              TOOLS.map((t) => t.function.name),
            ),
          ).toBeNull();
        }
      } else {
        expect(c.message.tool_calls).toBeUndefined();
        expect(typeof c.message.content).toBe("string");
      }
    }
  });

  it("a history with an assistant tool_calls turn and tool results is answered", async () => {
    const r = await openai.chat.completions.create({
      model,
      tools: TOOLS,
      temperature: 0,
      max_tokens: 8,
      messages: [
        { role: "user", content: "Weather in Paris?" },
        {
          role: "assistant",
          content: null,
          tool_calls: [
            {
              id: "call_Zx81mQ",
              type: "function",
              function: { name: "get_weather", arguments: '{"city": "Paris", "unit": "c"}' },
            },
          ],
        },
        { role: "tool", tool_call_id: "call_Zx81mQ", content: "21 degrees" },
      ],
    });
    expect(typeof r.choices[0]!.message.content).toBe("string");
    expect(r.usage!.completion_tokens).toBeGreaterThan(0);
  });

  it("billing: tools add exactly the rendered definitions, and /v1/tokenize gives the ids chat bills", async () => {
    const promptTokens = async (extra: Record<string, unknown>) =>
      (
        await openai.chat.completions.create({
          model,
          messages,
          temperature: 0,
          max_tokens: 1,
          ...extra,
        } as OpenAI.ChatCompletionCreateParamsNonStreaming)
      ).usage!.prompt_tokens;
    const tokenize = async (body: Record<string, unknown>) => {
      const r = await fetch(`${stack.base}/v1/tokenize`, {
        method: "POST",
        headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ model, ...body }),
      });
      expect(r.status).toBe(200);
      return ((await r.json()) as { count: number }).count;
    };
    const py = (v: unknown): string =>
      Array.isArray(v)
        ? `[${v.map(py).join(", ")}]`
        : v !== null && typeof v === "object"
          ? `{${Object.entries(v)
              .map(([k, x]) => `${JSON.stringify(k)}: ${py(x)}`)
              .join(", ")}}`
          : JSON.stringify(v);
    const defs = TOOLS.map((t) => ({
      type: "function",
      function: {
        name: t.function.name,
        description: t.function.description,
        parameters: t.function.parameters ?? { type: "object", properties: {}, additionalProperties: false },
      },
    }));
    const piece = await tokenize({ prompt: `[AVAILABLE_TOOLS] ${py(defs)}[/AVAILABLE_TOOLS]` });
    const without = await promptTokens({});
    for (const tool_choice of ["none", "auto"]) {
      const withTools = await promptTokens({ tools: TOOLS, tool_choice });
      expect(withTools - without).toBe(piece);
      expect(await tokenize({ messages, tools: TOOLS, tool_choice })).toBe(withTools);
    }
    const forced = await promptTokens({ tools: TOOLS, tool_choice: "required" });
    expect(forced - without).toBe(piece + (await tokenize({ prompt: "[TOOL_CALLS]" })));
    expect(await tokenize({ messages, tools: TOOLS, tool_choice: "required" })).toBe(forced);
  });

  it("bad tools are a 400 with param, through the SDK", async () => {
    const err = await openai.chat.completions
      .create({
        model,
        messages,
        tools: [fn("f", { type: "object", properties: { a: { type: "string", not: {} } } })],
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe(
      "tools[0].function.parameters.properties.a.not",
    );
  });
});
