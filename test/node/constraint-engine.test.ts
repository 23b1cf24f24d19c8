/**
 * Structured output and logprobs through the real engine on a random-weight dev model: whatever the
 * weights, a constrained stream is always a valid prefix, and every "stop" is a complete document that
 * parses and validates against its schema.
 */
import { beforeAll, describe, expect, it } from "vitest";
import type { GenerateEvent, GenerateParams, TokenLogprob } from "../../contract/wire";
import { advance, accepting, initialState } from "../../gpu-backend/engine/constraint/automaton";
import { compileSchema, JSON_OBJECT_GRAMMAR } from "../../contract/json-schema";
import { mistralTokenBytes } from "../../gpu-backend/engine/constraint/vocab";
import { DEFAULT_ENGINE_OPTIONS, Engine } from "../../gpu-backend/engine/engine";
import { loadModelRunner, type ModelRunner } from "../../gpu-backend/engine/model-runner";
import { devModel, onEvents } from "./engine-helpers";
import { TEST_SCHEMAS, validate } from "./helpers/json-schema-check";

let runner: ModelRunner;
let engine: Engine;
beforeAll(async () => {
  runner = await loadModelRunner(devModel("tiny"), { threads: 1, spin: false });
  engine = new Engine(runner, { ...DEFAULT_ENGINE_OPTIONS, kvBudgetBytes: 128 * 2 ** 20 });
});

const prompt = (seed: number) => [
  1,
  733,
  16289,
  28793,
  ...Array.from({ length: 6 }, (_, i) => (((i + 1) * 7919 + seed * 104729) % 31000) + 500),
  733,
  28748,
  16289,
  28793,
];

function params(seed: number, extra: Partial<GenerateParams>): GenerateParams {
  return {
    model: "tiny",
    input_ids: prompt(seed),
    max_tokens: 200,
    temperature: 1,
    top_p: 1,
    top_k: 0,
    seed,
    stop_token_ids: [],
    cache_salt: "",
    request_id: `t${seed}`,
    ...extra,
  };
}

interface Result {
  ids: number[];
  logprobs: TokenLogprob[];
  done: Extract<GenerateEvent, { type: "done" }>;
}
function generate(p: GenerateParams): Promise<Result> {
  const ids: number[] = [];
  const logprobs: TokenLogprob[] = [];
  return new Promise((resolve) => {
    engine.submit(
      p,
      onEvents((ev) => {
        if (ev.type === "done") return resolve({ ids, logprobs, done: ev });
        ids.push(...ev.ids);
        if (ev.logprobs) logprobs.push(...ev.logprobs);
      }),
    );
  });
}

const bytes = mistralTokenBytes();
const textOf = (ids: number[]) =>
  new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(Buffer.concat(ids.map((i) => bytes[i]!)));

describe("constrained generation on the tiny dev model (temperature 1)", () => {
  it("50 seeded requests (json_object and three schemas): every output is a valid prefix, every stop parses and validates", async () => {
    const kinds = [
      {
        name: "json_object",
        rf: { type: "json_object" as const },
        schema: { type: "object" },
        grammar: JSON_OBJECT_GRAMMAR,
      },
      ...Object.entries(TEST_SCHEMAS).map(([name, schema]) => ({
        name,
        rf: { type: "json_schema" as const, schema },
        schema,
        grammar: compileSchema(schema),
      })),
    ];
    const jobs = Array.from({ length: 50 }, (_, i) => ({ seed: 1000 + i, kind: kinds[i % kinds.length]! }));
    const results = await Promise.all(jobs.map((j) => generate(params(j.seed, { response_format: j.kind.rf }))));
    const stops: Record<string, number> = {};
    results.forEach((r, i) => {
      const { kind, seed } = jobs[i]!;
      expect(["stop", "length"], `seed ${seed}`).toContain(r.done.finish_reason);
      expect(r.ids).not.toContain(2);
      const text = textOf(r.ids);
      const state = advance(initialState(kind.grammar), new TextEncoder().encode(text));
      expect(state, `${kind.name} seed ${seed}: ${text}`).not.toBeNull();
      if (r.done.finish_reason !== "stop") return;
      expect(state!.some(accepting)).toBe(true);
      expect(validate(JSON.parse(text), kind.schema as Record<string, unknown>), text).toBeNull();
      stops[kind.name] = (stops[kind.name] ?? 0) + 1;
    });
    const total = results.filter((r) => r.done.finish_reason === "stop").length;
    const per = kinds
      .map((k) => `${k.name} ${stops[k.name] ?? 0}/${jobs.filter((j) => j.kind === k).length}`)
      .join(", ");
    console.log(`constrained, tiny dev model, T=1, max_tokens 200: ${total}/50 ended with stop (${per})`);
    // Schema-bounded documents end quickly; json_object's free strings can outlast 200 tokens on random weights.
    expect(total).toBeGreaterThanOrEqual(30);
  });

  it("max_tokens cuts a document short with length, and the output is a valid prefix", async () => {
    const r = await generate(
      params(7, { max_tokens: 3, response_format: { type: "json_schema", schema: TEST_SCHEMAS.nested } }),
    );
    expect(r.done.finish_reason).toBe("length");
    expect(r.ids).toHaveLength(3);
    expect(
      advance(initialState(compileSchema(TEST_SCHEMAS.nested)), new TextEncoder().encode(textOf(r.ids))),
    ).not.toBeNull();
  });

  it("stop_token_ids are refused until the document is complete, so a stop is always a whole document", async () => {
    const quote = bytes.findIndex((b, id) => id > 258 && b.length === 1 && b[0] === 0x22);
    for (const seed of [11, 12, 13]) {
      const r = await generate(
        params(seed, { stop_token_ids: [quote], response_format: { type: "json_schema", schema: TEST_SCHEMAS.flat } }),
      );
      expect(r.ids).not.toContain(quote);
      if (r.done.finish_reason === "stop") expect(validate(JSON.parse(textOf(r.ids)), TEST_SCHEMAS.flat)).toBeNull();
    }
  });
});

describe("logprobs through the engine", () => {
  it("at temperature 0 the chosen token is top_logprobs[0]; logprobs are <= 0 and sorted", async () => {
    const r = await generate(params(3, { temperature: 0, max_tokens: 12, logprobs: true, top_logprobs: 5 }));
    expect(r.logprobs).toHaveLength(r.ids.length);
    r.logprobs.forEach((lp, i) => {
      expect(lp.top).toHaveLength(5);
      expect(lp.top[0]!.id).toBe(r.ids[i]);
      expect(lp.logprob).toBe(lp.top[0]!.logprob);
      expect(lp.logprob).toBeLessThanOrEqual(0);
      for (let k = 1; k < lp.top.length; k++) expect(lp.top[k]!.logprob).toBeLessThanOrEqual(lp.top[k - 1]!.logprob);
      expect(lp.top.reduce((a, t) => a + Math.exp(t.logprob), 0)).toBeLessThanOrEqual(1 + 1e-6);
    });
  });

  it("under a constraint, logprobs come from the masked distribution: alternatives are allowed tokens only", async () => {
    const r = await generate(
      params(5, {
        max_tokens: 30,
        logprobs: true,
        top_logprobs: 20,
        response_format: { type: "json_schema", schema: TEST_SCHEMAS.flat },
      }),
    );
    expect(r.logprobs).toHaveLength(r.ids.length);
    // The first token must open the object (or be the one leading space): every alternative is a way to do that.
    for (const t of r.logprobs[0]!.top) expect(new TextDecoder().decode(bytes[t.id]!)).toMatch(/^ ?(\{|$)/);
    for (const lp of r.logprobs) {
      expect(Number.isFinite(lp.logprob)).toBe(true);
      expect(lp.top.every((t) => Number.isFinite(t.logprob) && t.logprob <= 0)).toBe(true);
      expect(lp.top.reduce((a, t) => a + Math.exp(t.logprob), 0)).toBeLessThanOrEqual(1 + 1e-6);
    }
    // Where the schema allows only a few tokens (spellings of the next key), 20 alternatives hold all the mass:
    // the distribution is renormalised over the allowed tokens.
    expect(r.logprobs.some((lp) => Math.abs(lp.top.reduce((a, t) => a + Math.exp(t.logprob), 0) - 1) < 1e-4)).toBe(
      true,
    );
  });

  it("without logprobs, tokens events carry none (unconstrained requests unchanged)", async () => {
    const events: GenerateEvent[] = [];
    await new Promise<void>((resolve) =>
      engine.submit(
        params(9, { max_tokens: 4 }),
        onEvents((ev) => (events.push(ev), ev.type === "done" && resolve())),
      ),
    );
    expect(events.filter((e) => e.type === "tokens").every((e) => !("logprobs" in e))).toBe(true);
  });
});
