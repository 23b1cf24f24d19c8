/**
 * Jump-forward decoding through the real engine on dev models: forced runs are appended without sampling
 * and fed as one chunk; the ids are SentencePiece's; greedy output equals the same request without
 * jump-forward where the grammar leaves the model no choice of tokenization; logprobs, max_tokens, batch
 * invariance and format_trigger still hold. Plus the scheduler's chunk policy and the NDJSON rendering.
 */
import mistral from "mistral-tokenizer-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileSchema, JSON_OBJECT_GRAMMAR } from "../../contract/json-schema";
import type { GenerateParams, TokenLogprob } from "../../contract/wire";
import { advance, initialState } from "../../gpu-backend/engine/constraint/automaton";
import { compileResponseFormat, Constraint, mistralVocab } from "../../gpu-backend/engine/constraint/index";
import { mistralTokenBytes } from "../../gpu-backend/engine/constraint/vocab";
import { DEFAULT_ENGINE_OPTIONS, Engine, type EngineOutput } from "../../gpu-backend/engine/engine";
import { loadModelRunner, type ModelRunner } from "../../gpu-backend/engine/model-runner";
import { Scheduler, type SchedSeq } from "../../gpu-backend/engine/scheduler";
import { renderOutput } from "../../gpu-backend/server/render";
import { tokenLogprob } from "../../gpu-backend/engine/sampler";
import { devModel } from "./engine-helpers";

const bytes = mistralTokenBytes();
const textOf = (ids: readonly number[]) => Buffer.concat(ids.map((i) => bytes[i]!)).toString("utf8");
const manifest = { name: "t", tokenizer: { kind: "mistral-v1-sentencepiece" }, vocab_size: 32000, eos_token_id: 2 };

/** Values of characters outside the vocabulary: the grammar leaves no choice of tokens inside them. */
const RARE_ARRAY = { type: "array", items: { enum: ["𝔾𝕠𝕠𝕠", "𝕙𝕚𝕚𝕚", "ℍ𝕪𝕪𝕪"] }, minItems: 12 };
const BENCH_LIKE = {
  type: "object",
  properties: {
    items: {
      type: "array",
      minItems: 8,
      items: {
        type: "object",
        properties: { id: { type: "integer" }, tag: { enum: ["alpha", "beta", "gamma"] } },
        required: ["id", "tag"],
        additionalProperties: false,
      },
    },
  },
  required: ["items"],
  additionalProperties: false,
};

interface Result {
  ids: number[];
  logprobs: TokenLogprob[];
  finish: NonNullable<EngineOutput["finish"]>;
}
function generate(engine: Engine, p: GenerateParams): Promise<Result> {
  const ids: number[] = [];
  const logprobs: TokenLogprob[] = [];
  return new Promise((resolve) =>
    engine.submit(p, (out) => {
      ids.push(...out.ids);
      if (out.logprobs) logprobs.push(...out.logprobs);
      expect(out.logprobs?.length ?? out.ids.length).toBe(out.ids.length);
      if (out.finish) resolve({ ids, logprobs, finish: out.finish });
    }),
  );
}

const params = (seed: number, extra: Partial<GenerateParams> = {}): GenerateParams => ({
  model: "dev",
  input_ids: [1, 733, 16289, 28793, 500 + seed * 37, 900 + seed * 7, 733, 28748, 16289, 28793],
  max_tokens: 80,
  temperature: 0,
  top_p: 1,
  top_k: 0,
  seed,
  stop_token_ids: [],
  cache_salt: "",
  request_id: `jf${seed}`,
  ...extra,
});
const schema = (s: unknown) => ({ response_format: { type: "json_schema" as const, schema: s } });

describe("forced runs (no model)", () => {
  it("the ids of a forced key are SentencePiece's, cut before a token that a longer allowed token straddles", () => {
    const rf = {
      type: "json_schema" as const,
      schema: { type: "object", properties: { name: { type: "string" } }, required: ["name"] },
    };
    const c = new Constraint(compileResponseFormat(rf, manifest as never));
    c.accept(mistral.encode("{", false, false)[0]!);
    const ids = [...c.forced()];
    const text = textOf(ids);
    expect(ids).toEqual(mistral.encode(text, false, false));
    // `":"` may follow (the value is a string), so `":` is left for the model to sample, merged or not.
    const merged = mistral.vocabById.indexOf('":"');
    expect(text).toBe(merged >= 0 ? '"name' : '"name":');
    for (const id of ids) c.accept(id);
    expect(c.forced()).toEqual([]);
  });

  it("a token that a longer allowed token could straddle is left to the model, and a stop id is never forced", () => {
    const ab = new Constraint(
      compileResponseFormat({ type: "json_schema", schema: { enum: ["ab", "ac"] } }, manifest as never),
    );
    ab.accept(mistral.encode('"', false, false)[0]!);
    expect(textOf([...ab.forced()])).toBe(""); // `a` could be `ab` or `ac`: the model picks
    const compiled = compileResponseFormat({ type: "json_schema", schema: { const: "zqzqx" } }, manifest as never);
    const c = new Constraint(compiled);
    c.accept(mistral.encode('"', false, false)[0]!);
    const run = [...c.forced()];
    expect(textOf(run)).toBe('zqzqx"');
    const s = new Constraint(compiled, [run[1]!]);
    s.accept(mistral.encode('"', false, false)[0]!);
    expect(s.forced()).toEqual(run.slice(0, 1));
  });
});

/**
 * Whether the model's own greedy output already took every forced run as jump-forward would (the same
 * ids at each point where the grammar forces text): then jump-forward must not change a single token.
 */
function agreesWithForcedRuns(rf: GenerateParams["response_format"], ids: number[], maxTokens: number): boolean {
  const c = new Constraint(compileResponseFormat(rf!, manifest as never));
  for (let i = 0; i < ids.length; ) {
    c.accept(ids[i++]!);
    const run = c.forced().slice(0, maxTokens - i);
    for (const id of run) {
      if (i < ids.length && ids[i] !== id) return false;
      if (i < ids.length) c.accept(ids[i]!);
      i++;
    }
  }
  return true;
}

describe("jump-forward on dev models", () => {
  const runners: Record<string, ModelRunner> = {};
  beforeAll(async () => {
    runners.tiny = await loadModelRunner(devModel("tiny"), { threads: 1, spin: false });
    runners.small = await loadModelRunner(devModel("small"), { threads: 1, spin: false, batchInvariant: true });
  });
  afterAll(async () => {
    for (const r of Object.values(runners)) await r.release();
  });
  const engine = (name: string, jumpForward = true) =>
    new Engine(runners[name]!, { ...DEFAULT_ENGINE_OPTIONS, kvBudgetBytes: 64 * 2 ** 20, jumpForward });

  it.each(["tiny", "small"])(
    "%s: greedy output with jump-forward equals the same request without it wherever the model's own tokens agree with the forced runs",
    async (name) => {
      const on = engine(name);
      const off = engine(name, false);
      let agreeing = 0;
      // A random-weight model often spells forced text its own way (` "` as `▁` + `"`); 24 seeds give a few that agree.
      for (let seed = 1; seed <= 24; seed++) {
        const p = params(seed, { ...schema(RARE_ARRAY), max_tokens: 48 });
        const a = await generate(off, p);
        const b = await generate(on, p);
        if (!agreesWithForcedRuns(p.response_format, a.ids, p.max_tokens)) continue;
        agreeing++;
        expect(b.ids).toEqual(a.ids);
        expect(b.finish.usage).toEqual(a.finish.usage);
      }
      expect(agreeing).toBeGreaterThanOrEqual(2);
      expect(off.metrics.forcedTokens).toBe(0);
      // Most of each value is forced, and forced runs went through chunk steps.
      expect(on.metrics.forcedTokens).toBeGreaterThan(on.metrics.completionTokens / 3);
      expect(on.metrics.chunkSteps).toBeGreaterThan(0);
      expect(on.metrics.steps.decode).toBeLessThan(off.metrics.steps.decode);
    },
  );

  it('"ride": forced runs fed one token per decode step give exactly the stepwise logprobs, with no sampling for them', async () => {
    const ride = new Engine(runners.tiny!, {
      ...DEFAULT_ENGINE_OPTIONS,
      kvBudgetBytes: 64 * 2 ** 20,
      jumpForward: "ride",
    });
    const off = engine("tiny", false);
    let agreeing = 0;
    for (let seed = 1; seed <= 24; seed++) {
      const p = params(seed, { ...schema(RARE_ARRAY), logprobs: true, max_tokens: 48 });
      const a = await generate(off, p);
      const b = await generate(ride, p);
      if (!agreesWithForcedRuns(p.response_format, a.ids, p.max_tokens)) continue;
      agreeing++;
      expect(b.ids).toEqual(a.ids);
      expect(b.logprobs.map((l) => l.logprob)).toEqual(a.logprobs.map((l) => l.logprob));
    }
    expect(agreeing).toBeGreaterThanOrEqual(2);
    expect(ride.metrics.forcedTokens).toBeGreaterThan(0);
    expect(ride.metrics.chunkSteps).toBe(0);
  });

  it("logprobs of forced tokens come from the chunk that feeds them: one each, equal to a full forward pass's", async () => {
    const on = engine("tiny");
    const p = params(4, schema(RARE_ARRAY));
    const plain = await generate(on, p);
    const withLp = await generate(on, { ...p, logprobs: true, top_logprobs: 2 });
    expect(withLp.ids).toEqual(plain.ids);
    expect(withLp.logprobs).toHaveLength(withLp.ids.length);
    expect(on.metrics.forcedTokens).toBeGreaterThan(0);
    // The reference: one forward pass over prompt + output, each row masked by the grammar's state there.
    const all = await runners.tiny!.forwardAll([...p.input_ids, ...withLp.ids]);
    const V = runners.tiny!.manifest.vocab_size;
    const c = new Constraint(compileResponseFormat(p.response_format!, manifest as never));
    withLp.ids.forEach((id, i) => {
      const row = all.logits.slice((p.input_ids.length - 1 + i) * V, (p.input_ids.length + i) * V);
      c.apply(row);
      // Float noise only: the reference runs every position in one call, the engine in steps and chunks.
      expect(Math.abs(tokenLogprob(row, id, 0).logprob - withLp.logprobs[i]!.logprob)).toBeLessThan(1e-2);
      c.accept(id);
    });
  });

  it("a forced run is cut at max_tokens (with and without logprobs), and the cut tokens are billed", async () => {
    const e = engine("tiny");
    const constant = schema({ const: "𝔾𝕠𝕠𝕠𝕠𝕠𝕠𝕠𝕠𝕠𝕠" });
    for (const logprobs of [false, true]) {
      const r = await generate(e, params(5, { ...constant, max_tokens: 6, logprobs }));
      expect(r.ids).toHaveLength(6);
      expect(r.finish.reason).toBe("length");
      expect(r.finish.usage.completion_tokens).toBe(6);
      if (logprobs) expect(r.logprobs).toHaveLength(6);
    }
    // The whole constant: forced to the end, finished without sampling EOS.
    const whole = await generate(e, params(5, constant));
    expect(JSON.parse(textOf(whole.ids))).toBe("𝔾𝕠𝕠𝕠𝕠𝕠𝕠𝕠𝕠𝕠𝕠");
    expect(whole.finish.reason).toBe("stop");
  });

  it("batch invariance holds with forced runs: solo and concurrent constrained requests give the same tokens", async () => {
    const e = engine("small");
    const reqs = Array.from({ length: 6 }, (_, i) =>
      params(10 + i, {
        ...schema(i % 2 ? BENCH_LIKE : RARE_ARRAY),
        max_tokens: 40 - 3 * i,
        temperature: i % 3 === 0 ? 0 : 0.8,
      }),
    );
    const solo: number[][] = [];
    for (const r of reqs) solo.push((await generate(e, r)).ids);
    const together = await Promise.all(reqs.map((r) => generate(e, r)));
    expect(together.map((r) => r.ids)).toEqual(solo);
    expect(e.metrics.chunkSteps).toBeGreaterThan(0);
  });

  it("a sequence whose masks are slow sits out steps alone: its batch-mate keeps its tokens, it stays valid", async () => {
    const e = engine("tiny");
    // Every token moves each option's character count, so every mask misses the cache.
    const slow = { anyOf: Array.from({ length: 48 }, (_, i) => ({ type: "string", maxLength: 5000 + 13 * i })) };
    const plainP = params(20, { max_tokens: 40 });
    const solo = await generate(e, plainP);
    const [plain, hostile] = await Promise.all([
      generate(e, plainP),
      generate(e, params(21, { ...schema(slow), max_tokens: 40, temperature: 1 })),
    ]);
    expect(plain.ids).toEqual(solo.ids);
    expect(e.metrics.maskWaits).toBeGreaterThan(0);
    expect(hostile.finish.reason).toBe("length");
    expect(advance(initialState(compileSchema(slow)), new TextEncoder().encode(textOf(hostile.ids)))).not.toBeNull();
  });

  it("format_trigger: free text until the trigger, then the format constrains what follows", async () => {
    const e = engine("tiny");
    const free = await generate(e, params(6, { max_tokens: 12 }));
    const trigger = textOf(free.ids.slice(2, 5));
    expect(trigger.length).toBeGreaterThan(0);
    const r = await generate(
      e,
      params(6, { max_tokens: 40, response_format: { type: "json_object" }, format_trigger: trigger }),
    );
    // Free text up to the token that first completes the trigger: what the model says unconstrained.
    let fired = 0;
    while (!textOf(free.ids.slice(0, fired + 1)).includes(trigger)) fired++;
    expect(r.ids.slice(0, fired + 1)).toEqual(free.ids.slice(0, fired + 1));
    // After it, a valid JSON prefix.
    const text = textOf(r.ids);
    const after = new TextEncoder().encode(text.slice(text.indexOf(trigger) + trigger.length));
    expect(after.length).toBeGreaterThan(0);
    expect(advance(initialState(JSON_OBJECT_GRAMMAR), after)).not.toBeNull();
  });
});

describe("scheduler: chunk steps", () => {
  it("a sequence with a forced run gets at most one chunk step per decode round; the others keep stepping", () => {
    const s = new Scheduler<SchedSeq & { feedLen: number }>({ maxBatch: 4, prefillChunk: 8, maxQueue: 8 });
    const a = { id: 1, promptLen: 2, pos: 0, state: "waiting" as const, feedLen: 3, chunkRound: -1 };
    const b = { id: 2, promptLen: 2, pos: 0, state: "waiting" as const, feedLen: 1, chunkRound: -1 };
    for (const q of [a, b]) {
      s.enqueue(q);
      s.startPrefill(s.nextAdmission(() => true)!);
      q.pos = 2;
      s.promote(q);
    }
    expect(s.plan()).toMatchObject({ kind: "chunk", seq: a });
    // a got another forced run at once: it waits for the decode step of this round.
    expect(s.plan()).toMatchObject({ kind: "decode" });
    expect(s.plan()).toMatchObject({ kind: "chunk", seq: a });
    b.feedLen = 0; // b waits for its mask: only a can run, round after round
    expect(s.plan()).toMatchObject({ kind: "chunk", seq: a });
  });
});

describe("server rendering of engine outputs", () => {
  it("tokens and the finish of one output become a tokens event then a done event", () => {
    const evs = renderOutput({
      ids: [5, 6],
      logprobs: [
        { logprob: -1, top: [] },
        { logprob: 0, top: [] },
      ],
      finish: {
        reason: "stop",
        usage: { prompt_tokens: 3, cached_tokens: 0, completion_tokens: 2 },
        timings: { queue_ms: 0, prefill_ms: 1, decode_ms: 2 },
      },
    });
    expect(evs.map((e) => e.type)).toEqual(["tokens", "done"]);
    expect(renderOutput({ ids: [] })).toEqual([]);
    expect(mistralVocab(2).encode).not.toBeNull();
  });
});
