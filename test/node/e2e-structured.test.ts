/**
 * Structured output and logprobs through the real stack (launcher -> wrangler dev -> backend -> ONNX
 * Runtime) with the unmodified `openai` and `@mistralai/mistralai` SDKs, on a random-weight dev model.
 */
import { Mistral } from "@mistralai/mistralai";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_SCHEMAS, validate } from "./helpers/json-schema-check";
import { type Stack, useSharedStack } from "./helpers/stack";

let stack: Stack;
let openai: OpenAI;
let mistral: Mistral;

beforeAll(async () => {
  stack = await useSharedStack();
  openai = new OpenAI({ baseURL: `${stack.base}/v1`, apiKey: stack.apiKey, maxRetries: 0 });
  mistral = new Mistral({ apiKey: stack.apiKey, serverURL: stack.base });
}, 300_000);

afterAll(async () => {
  await stack?.stop();
});

const model = "mistral-tiny";
const user = (content: string) => [{ role: "user" as const, content }];

describe("response_format through the openai SDK (temperature 1)", () => {
  it("50 seeded requests, json_object and three schemas: every stop parses and validates", async () => {
    const kinds = [
      { name: "json_object", format: { type: "json_object" as const }, schema: { type: "object" } },
      ...Object.entries(TEST_SCHEMAS).map(([name, schema]) => ({
        name,
        format: {
          type: "json_schema" as const,
          json_schema: { name, schema: schema as Record<string, unknown>, strict: true },
        },
        schema,
      })),
    ];
    const jobs = Array.from({ length: 50 }, (_, i) => ({ seed: 100 + i, kind: kinds[i % kinds.length]! }));
    const stops: Record<string, number> = {};
    // A few at a time: the backend batches them, the 2-core machine is not flooded with connections.
    for (let i = 0; i < jobs.length; i += 5) {
      await Promise.all(
        jobs.slice(i, i + 5).map(async ({ seed, kind }) => {
          const r = await openai.chat.completions.create({
            model,
            messages: user("Describe a person."),
            temperature: 1,
            seed,
            max_tokens: 200,
            response_format: kind.format,
          });
          const choice = r.choices[0]!;
          expect(["stop", "length"]).toContain(choice.finish_reason);
          if (choice.finish_reason !== "stop") return;
          stops[kind.name] = (stops[kind.name] ?? 0) + 1;
          expect(
            validate(JSON.parse(choice.message.content!), kind.schema as Record<string, unknown>),
            choice.message.content!,
          ).toBeNull();
        }),
      );
    }
    const total = Object.values(stops).reduce((a, b) => a + b, 0);
    console.log(`e2e constrained (mistral-tiny, T=1, max_tokens 200): ${total}/50 ended with stop`, stops);
    expect(total).toBeGreaterThanOrEqual(30);
  });

  it("json_object adds a JSON hint only when no message mentions JSON", async () => {
    const tokens = async (content: string, json: boolean) =>
      (
        await openai.chat.completions.create({
          model,
          messages: user(content),
          max_tokens: 1,
          temperature: 0,
          ...(json ? { response_format: { type: "json_object" as const } } : {}),
        })
      ).usage!.prompt_tokens;
    expect(await tokens("Describe a cat.", true)).toBeGreaterThan(await tokens("Describe a cat.", false));
    expect(await tokens("Describe a cat in JSON.", true)).toBe(await tokens("Describe a cat in JSON.", false));
  });

  it("an unsupported schema keyword is a 400 naming it; top_logprobs needs logprobs", async () => {
    const err = await openai.chat.completions
      .create({
        model,
        messages: user("x"),
        response_format: {
          type: "json_schema",
          json_schema: { name: "x", schema: { type: "string", pattern: "(a)\\1" } },
        },
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("response_format.json_schema.schema");
    expect((err as Error).message).toContain("'pattern'");
    const e2 = await openai.chat.completions
      .create({ model, messages: user("x"), top_logprobs: 3 })
      .catch((e: unknown) => e);
    expect((e2 as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("top_logprobs");
  });

  it("the Mistral SDK's json_schema shape is accepted", async () => {
    const r = await mistral.chat.complete({
      model,
      messages: user("A person."),
      temperature: 1,
      randomSeed: 3,
      maxTokens: 200,
      responseFormat: {
        type: "json_schema",
        jsonSchema: { name: "flat", schemaDefinition: TEST_SCHEMAS.flat as Record<string, unknown>, strict: true },
      },
    });
    const c = r.choices[0]!;
    if (c.finishReason === "stop")
      expect(validate(JSON.parse(c.message?.content as string), TEST_SCHEMAS.flat)).toBeNull();
  });
});

describe("logprobs through the openai SDK", () => {
  it("temperature 0: the chosen token is top_logprobs[0], logprobs <= 0 and sorted, tokens joined equal the content", async () => {
    const r = await openai.chat.completions.create({
      model,
      messages: user("Hello"),
      temperature: 0,
      max_tokens: 16,
      logprobs: true,
      top_logprobs: 4,
    });
    const c = r.choices[0]!;
    const content = c.logprobs!.content!;
    expect(content.map((t) => t.token).join("")).toBe(c.message.content);
    expect(content).toHaveLength(r.usage!.completion_tokens);
    for (const t of content) {
      expect(t.top_logprobs).toHaveLength(4);
      expect(t.logprob).toBe(t.top_logprobs[0]!.logprob);
      expect(t.logprob).toBeLessThanOrEqual(0);
      for (let k = 1; k < 4; k++)
        expect(t.top_logprobs[k]!.logprob).toBeLessThanOrEqual(t.top_logprobs[k - 1]!.logprob);
      expect(Buffer.from(t.bytes!).toString()).toBe(t.token);
    }
  });

  it("a stop string trims the tokens exactly like the content, streaming and not", async () => {
    const base = await openai.chat.completions.create({
      model,
      messages: user("Tell a story"),
      temperature: 0,
      max_tokens: 40,
    });
    const full = base.choices[0]!.message.content!;
    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 3);
    const r = await openai.chat.completions.create({
      model,
      messages: user("Tell a story"),
      temperature: 0,
      max_tokens: 40,
      stop: [stop],
      logprobs: true,
    });
    const c = r.choices[0]!;
    expect(c.message.content).toBe(full.slice(0, full.indexOf(stop)));
    expect(c.logprobs!.content!.map((t) => t.token).join("")).toBe(c.message.content);
    const stream = await openai.chat.completions.create({
      model,
      messages: user("Tell a story"),
      temperature: 0,
      max_tokens: 40,
      stop: [stop],
      logprobs: true,
      top_logprobs: 2,
      stream: true,
    });
    let text = "";
    let joined = "";
    for await (const chunk of stream) {
      for (const ch of chunk.choices) {
        text += ch.delta.content ?? "";
        joined += (ch.logprobs?.content ?? []).map((t) => t.token).join("");
      }
    }
    expect(text).toBe(c.message.content);
    expect(joined).toBe(text);
  });

  it("under json_schema, the alternatives are tokens the schema allows", async () => {
    const r = await openai.chat.completions.create({
      model,
      messages: user("A person."),
      temperature: 1,
      seed: 9,
      max_tokens: 60,
      logprobs: true,
      top_logprobs: 5,
      response_format: {
        type: "json_schema",
        json_schema: { name: "flat", schema: TEST_SCHEMAS.flat as Record<string, unknown> },
      },
    });
    const first = r.choices[0]!.logprobs!.content![0]!;
    for (const t of first.top_logprobs) expect(t.token).toMatch(/^ ?(\{|$)/);
    expect(r.choices[0]!.logprobs!.content!.map((t) => t.token).join("")).toBe(r.choices[0]!.message.content);
  });
});
