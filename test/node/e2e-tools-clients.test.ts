/**
 * Tool calling through the real stack with the other unmodified clients: @mistralai/mistralai, the Vercel
 * AI SDK (ai + @ai-sdk/mistral) and LangChain (@langchain/openai), streamed and not, at temperature 1 on
 * the random-weight dev model. Every call not cut by max_tokens must validate against its schema.
 */
import { createMistral } from "@ai-sdk/mistral";
import { ChatOpenAI } from "@langchain/openai";
import { Mistral } from "@mistralai/mistralai";
import { generateText, jsonSchema, streamText, tool } from "ai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { type Stack, useSharedStack } from "./helpers/stack";
import { callProblem, MISTRAL_TOOLS, messages, model, schemaOf, TOOLS } from "./helpers/tool-fixtures";

let stack: Stack;

beforeAll(async () => {
  stack = await useSharedStack();
}, 300_000);

afterAll(async () => {
  await stack?.stop();
});

/** LangChain's OpenAI chat model on the shared stack (no retries: a failure shows as it happened). */
const chatOpenAI = (extra: { maxTokens?: number; streaming?: boolean } = {}) =>
  new ChatOpenAI({
    model,
    apiKey: stack.apiKey,
    temperature: 1,
    maxTokens: 150,
    maxRetries: 0,
    configuration: { baseURL: `${stack.base}/v1` },
    ...extra,
  });

describe("other clients", () => {
  it("@mistralai/mistralai, toolChoice any: calls parse with schema-valid arguments, streamed and not", async () => {
    const mistral = new Mistral({ apiKey: stack.apiKey, serverURL: stack.base });
    let calls = 0;
    for (const seed of [31, 32, 33]) {
      const r = await mistral.chat.complete({
        model,
        messages,
        tools: MISTRAL_TOOLS,
        toolChoice: "any",
        temperature: 1,
        randomSeed: seed,
        maxTokens: 150,
      });
      const c = r.choices[0]!;
      if (c.finishReason === "length") continue;
      expect(c.finishReason).toBe("tool_calls");
      for (const tc of c.message!.toolCalls!) {
        const args =
          typeof tc.function.arguments === "string" ? JSON.parse(tc.function.arguments) : tc.function.arguments;
        expect(
          callProblem(
            tc.function.name,
            args,
            TOOLS.map((t) => t.function.name),
          ),
        ).toBeNull();
        calls++;
      }
    }
    expect(calls).toBeGreaterThanOrEqual(1);
    // The same stream shape as OpenAI's: the SDK's schemas parse every delta.
    const stream = await mistral.chat.stream({
      model,
      messages,
      tools: MISTRAL_TOOLS,
      toolChoice: "any",
      temperature: 1,
      randomSeed: 34,
      maxTokens: 150,
    });
    const byIndex = new Map<number, { name: string; args: string }>();
    let finish: string | null | undefined;
    for await (const ev of stream) {
      const ch = ev.data.choices[0]!;
      for (const tc of ch.delta.toolCalls ?? []) {
        const cur = byIndex.get(tc.index ?? 0) ?? { name: "", args: "" };
        cur.name += tc.function.name;
        cur.args +=
          typeof tc.function.arguments === "string" ? tc.function.arguments : JSON.stringify(tc.function.arguments);
        byIndex.set(tc.index ?? 0, cur);
      }
      finish = ch.finishReason ?? finish;
    }
    if (finish === "tool_calls")
      for (const { name, args } of byIndex.values())
        expect(
          callProblem(
            name,
            JSON.parse(args),
            TOOLS.map((t) => t.function.name),
          ),
        ).toBeNull();
  });

  it("ai + @ai-sdk/mistral, generateText with toolChoice required", async () => {
    const provider = createMistral({ baseURL: `${stack.base}/v1`, apiKey: stack.apiKey });
    // Short calls only: the SDK throws on an answer cut by max_tokens under toolChoice "required".
    const tools = Object.fromEntries(
      TOOLS.filter((t) => ["get_weather", "ping"].includes(t.function.name)).map((t) => [
        t.function.name,
        tool({ description: t.function.description, inputSchema: jsonSchema(schemaOf(t.function.name)) }),
      ]),
    );
    let calls = 0;
    for (const seed of [41, 42, 43]) {
      const r = await generateText({
        model: provider(model),
        prompt: "Use a tool.",
        tools,
        toolChoice: "required",
        temperature: 1,
        seed,
        maxOutputTokens: 150,
        // One call of at most ~40 tokens: never cut.
        providerOptions: { mistral: { parallelToolCalls: false } },
      });
      expect(r.finishReason).toBe("tool-calls");
      expect(r.toolCalls).toHaveLength(1);
      for (const tc of r.toolCalls) {
        expect(callProblem(tc.toolName, tc.input, Object.keys(tools))).toBeNull();
        calls++;
      }
    }
    expect(calls).toBe(3);
  });

  it("ai + @ai-sdk/mistral, streamText with toolChoice required: the streamed call validates", async () => {
    const provider = createMistral({ baseURL: `${stack.base}/v1`, apiKey: stack.apiKey });
    const tools = {
      get_weather: tool({ description: "The weather.", inputSchema: jsonSchema(schemaOf("get_weather")) }),
    };
    const r = streamText({
      model: provider(model),
      prompt: "Use a tool.",
      tools,
      toolChoice: "required",
      temperature: 1,
      seed: 44,
      maxOutputTokens: 150,
      providerOptions: { mistral: { parallelToolCalls: false } },
    });
    let inputDeltas = 0;
    for await (const part of r.fullStream) {
      if (part.type === "tool-input-delta") inputDeltas++;
      if (part.type === "error") throw part.error;
    }
    expect(await r.finishReason).toBe("tool-calls");
    const calls = await r.toolCalls;
    expect(calls).toHaveLength(1);
    expect(inputDeltas).toBeGreaterThan(0);
    expect(callProblem(calls[0]!.toolName, calls[0]!.input, ["get_weather"])).toBeNull();
    expect((await r.usage).inputTokens).toBeGreaterThan(0);
  });

  it("@langchain/openai bindTools, streamed: the chunks concatenate into valid calls", async () => {
    const llm = chatOpenAI({ streaming: true });
    const bound = llm.bindTools(TOOLS.slice(0, 1), { tool_choice: "required", seed: 54 } as never);
    let whole: Awaited<ReturnType<typeof bound.invoke>> | undefined;
    for await (const chunk of await bound.stream("Use a tool.")) whole = whole ? whole.concat(chunk) : chunk;
    if (whole!.response_metadata?.finish_reason === "length") return;
    expect(whole!.tool_calls!.length).toBeGreaterThanOrEqual(1);
    for (const tc of whole!.tool_calls!) expect(callProblem(tc.name, tc.args, ["get_weather"])).toBeNull();
  });

  it("@langchain/openai bindTools with tool_choice required", async () => {
    const llm = chatOpenAI();
    let calls = 0;
    for (const seed of [51, 52, 53]) {
      const msg = await llm.bindTools(TOOLS, { tool_choice: "required", seed } as never).invoke("Use a tool.");
      if (msg.response_metadata?.finish_reason === "length") continue;
      expect(msg.tool_calls!.length).toBeGreaterThanOrEqual(1);
      for (const tc of msg.tool_calls!) {
        expect(
          callProblem(
            tc.name,
            tc.args,
            TOOLS.map((t) => t.function.name),
          ),
        ).toBeNull();
        calls++;
      }
    }
    expect(calls).toBeGreaterThanOrEqual(1);
  });

  it("@langchain/openai withStructuredOutput (functionCalling): a forced named call parsed by the schema", async () => {
    const llm = chatOpenAI();
    const Mood = z.object({ name: z.string().max(8), mood: z.enum(["happy", "sad"]) });
    const structured = llm.withStructuredOutput(Mood, { method: "functionCalling" });
    for (const seed of [61, 62]) {
      const out = await structured.withConfig({ seed } as never).invoke("Describe a person.");
      expect(Mood.safeParse(out).success, JSON.stringify(out)).toBe(true);
    }
  });

  it.each(["jsonSchema", "functionCalling"] as const)(
    "@langchain/openai withStructuredOutput (%s): .int(), .email(), .uuid(), .regex() and nested optional objects",
    async (method) => {
      const llm = chatOpenAI({ maxTokens: 300 });
      const Person = z.object({
        age: z.number().int().min(0).max(130),
        email: z.string().email(),
        id: z.string().uuid(),
        code: z.string().regex(/^[A-Z]{3}-\d{2,4}$/),
        address: z
          .object({
            city: z.string().max(12),
            zip: z
              .string()
              .regex(/^\d{5}$/)
              .optional(),
          })
          .optional(),
      });
      const structured = llm.withStructuredOutput(Person, { method, includeRaw: true });
      let parsed = 0;
      for (const seed of [71, 72, 73]) {
        const out = await structured.withConfig({ seed } as never).invoke("Describe a person.");
        // A random-weight model may run to max_tokens inside a string: that answer is cut, not wrong.
        if ((out.raw.response_metadata as { finish_reason?: string }).finish_reason === "length") continue;
        expect(Person.safeParse(out.parsed).success, JSON.stringify(out.parsed)).toBe(true);
        parsed++;
      }
      expect(parsed).toBeGreaterThanOrEqual(1);
    },
  );
});
