import { beforeAll, describe, expect, it } from "vitest";
import type { GenerateEvent, GenerateParams } from "../../contract/wire";
import { Engine, DEFAULT_ENGINE_OPTIONS, type EngineOptions } from "../../gpu-backend/engine/engine";
import { KvPool } from "../../gpu-backend/engine/kv-cache";
import { loadModelRunner, type ModelRunner } from "../../gpu-backend/engine/model-runner";
import { PrefixCache } from "../../gpu-backend/engine/prefix-cache";
import { createRng, sampleToken } from "../../gpu-backend/engine/sampler";
import { Scheduler, type SchedSeq } from "../../gpu-backend/engine/scheduler";
import { devModel, onEvents } from "./engine-helpers";

let runner: ModelRunner;
beforeAll(async () => {
  runner = await loadModelRunner(devModel("tiny"), { threads: 1, spin: false });
});

const prompt = (n: number, seed: number) =>
  Array.from({ length: n }, (_, i) => (((i + 1) * 7919 + seed * 104729) % 31000) + 500);

function params(ids: number[], extra: Partial<GenerateParams> = {}): GenerateParams {
  return {
    model: "tiny",
    input_ids: ids,
    max_tokens: 8,
    temperature: 0,
    top_p: 1,
    top_k: 0,
    stop_token_ids: [],
    cache_salt: "",
    request_id: "t",
    ...extra,
  };
}

interface Result {
  tokens: number[];
  done: Extract<GenerateEvent, { type: "done" }>;
}
function generate(engine: Engine, p: GenerateParams): { result: Promise<Result>; cancel: () => void } {
  const tokens: number[] = [];
  let cancel = () => {};
  const result = new Promise<Result>((resolve) => {
    cancel = engine.submit(
      p,
      onEvents((ev) => (ev.type === "tokens" ? tokens.push(...ev.ids) : resolve({ tokens, done: ev }))),
    );
  });
  return { result, cancel };
}

const newEngine = (o: Partial<EngineOptions> = {}) =>
  new Engine(runner, { ...DEFAULT_ENGINE_OPTIONS, kvBudgetBytes: 64 * 2 ** 20, ...o });

function relDiff(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
}

describe("model runner", () => {
  it("chunked prefill + in-place decode over the KV pool matches a full forward pass", async () => {
    const m = runner.manifest;
    const ids = prompt(40, 1);
    const all = await runner.forwardAll([...ids, 999]);
    const pool = new KvPool(
      { layers: m.num_layers, kvHeads: m.num_kv_heads, headDim: m.head_dim, maxSeq: m.context_length },
      16 * 2 ** 20,
      2,
    );
    pool.admit(1, 64);
    for (const [a, b] of [
      [0, 17],
      [17, 40],
    ] as const) {
      await runner.step(pool, {
        ids: ids.slice(a, b),
        batch: 1,
        seqLen: b - a,
        pastLengths: [a],
        firstSlot: 0,
        logitsRows: [b - a - 1],
      });
      pool.setLength(1, b);
    }
    const lg = await runner.step(pool, {
      ids: [999],
      batch: 1,
      seqLen: 1,
      pastLengths: [40],
      firstSlot: 0,
      logitsRows: [0],
    });
    const V = m.vocab_size;
    expect(relDiff(lg, all.logits.subarray(40 * V, 41 * V))).toBeLessThan(1e-4);
  });

  it("a sequence's decode logits inside a ragged batch match running it alone (1e-4 relative)", async () => {
    const m = runner.manifest;
    const geo = { layers: m.num_layers, kvHeads: m.num_kv_heads, headDim: m.head_dim, maxSeq: m.context_length };
    const prompts = [prompt(5, 2), prompt(23, 3), prompt(70, 4)];
    const V = m.vocab_size;
    const batchPool = new KvPool(geo, 32 * 2 ** 20, 3);
    for (const [i, p] of prompts.entries()) {
      batchPool.admit(i, 128);
      await runner.step(batchPool, {
        ids: p,
        batch: 1,
        seqLen: p.length,
        pastLengths: [0],
        firstSlot: i,
        logitsRows: [p.length - 1],
      });
      batchPool.setLength(i, p.length);
    }
    const next = [11, 22, 33];
    const batched = await runner.step(batchPool, {
      ids: next,
      batch: 3,
      seqLen: 1,
      pastLengths: prompts.map((p) => p.length),
      firstSlot: 0,
      logitsRows: [0, 1, 2],
    });
    for (const [i, p] of prompts.entries()) {
      const alone = await runner.forwardAll([...p, next[i]!]);
      expect(
        relDiff(batched.subarray(i * V, (i + 1) * V), alone.logits.subarray(p.length * V, (p.length + 1) * V)),
      ).toBeLessThan(1e-4);
    }
  });
});

describe("engine", () => {
  it("greedy tokens are identical alone and in a continuous batch of 3 with different prompt lengths", async () => {
    const prompts = [prompt(3, 5), prompt(40, 6), prompt(300, 7)];
    const alone: number[][] = [];
    for (const p of prompts)
      alone.push((await generate(newEngine({ prefixCacheBytes: 0 }), params(p, { max_tokens: 12 })).result).tokens);
    const engine = newEngine({ prefixCacheBytes: 0, prefillChunk: 64 });
    let maxBatch = 0;
    engine.onStep = (kind, b) => {
      if (kind === "decode") maxBatch = Math.max(maxBatch, b);
    };
    const together = await Promise.all(prompts.map((p) => generate(engine, params(p, { max_tokens: 12 })).result));
    expect(maxBatch).toBe(3);
    together.forEach((r, i) => {
      expect(r.tokens).toEqual(alone[i]);
      expect(r.done.finish_reason).toBe("length");
    });
    expect(engine.pool.batchSize).toBe(0);
  });

  it("prefix cache: hit keeps greedy output, miss, salt isolation", async () => {
    const engine = newEngine({ blockSize: 16 });
    const ids = prompt(100, 8);
    const first = await generate(engine, params(ids)).result;
    expect(first.done.usage.cached_tokens).toBe(0);
    const second = await generate(engine, params(ids)).result;
    expect(second.done.usage.cached_tokens).toBe(96);
    expect(second.tokens).toEqual(first.tokens);
    // shares the first 2 blocks only
    const partial = await generate(engine, params([...ids.slice(0, 40), ...prompt(30, 9)])).result;
    expect(partial.done.usage.cached_tokens).toBe(32);
    const other = await generate(engine, params(prompt(50, 10))).result;
    expect(other.done.usage.cached_tokens).toBe(0);
    const salted = await generate(engine, params(ids, { cache_salt: "tenant-b" })).result;
    expect(salted.done.usage.cached_tokens).toBe(0);
    expect(salted.tokens).toEqual(first.tokens);
  });

  it("prefix cache evicts LRU blocks under a tiny budget", async () => {
    const m = runner.manifest;
    const blockBytes = m.num_layers * 2 * m.num_kv_heads * 16 * m.head_dim * 4 + 16 * 4 + 128;
    const engine = newEngine({ blockSize: 16, prefixCacheBytes: blockBytes * 4 });
    const a = prompt(65, 11);
    const b = prompt(65, 12);
    await generate(engine, params(a, { max_tokens: 1 })).result;
    expect(engine.prefix.snapshot().entries).toBe(4);
    await generate(engine, params(b, { max_tokens: 1 })).result;
    const s = engine.prefix.snapshot();
    expect(s.entries).toBe(4);
    expect(s.evictions).toBe(4);
    expect(s.bytes).toBeLessThanOrEqual(s.budgetBytes);
    expect((await generate(engine, params(a, { max_tokens: 1 })).result).done.usage.cached_tokens).toBe(0);
  });

  it("cancellation frees the slot within a step; seeded sampling is reproducible; stop tokens end the stream", async () => {
    const engine = newEngine();
    const ids = prompt(20, 13);
    const g = generate(engine, params(ids, { max_tokens: 1000 }));
    let steps = 0;
    await new Promise<void>((resolve) => {
      engine.onStep = () => {
        if (++steps === 3) resolve();
      };
    });
    g.cancel();
    const stepsAtCancel = steps;
    const r = await g.result;
    expect(r.done.finish_reason).toBe("cancelled");
    expect(steps - stepsAtCancel).toBeLessThanOrEqual(1);
    expect(engine.pool.batchSize).toBe(0);
    expect(engine.runningCount).toBe(0);

    const sampled = (seed: number) =>
      generate(engine, params(ids, { temperature: 0.9, top_p: 0.9, top_k: 50, seed, max_tokens: 10 })).result;
    const [s1, s2, s3] = await Promise.all([sampled(7), sampled(7), sampled(8)]);
    expect(s1.tokens).toEqual(s2.tokens);
    expect(s3.tokens).not.toEqual(s1.tokens);

    const greedy = await generate(engine, params(ids)).result;
    const stopAt = greedy.tokens[2]!;
    const stopped = await generate(engine, params(ids, { stop_token_ids: [stopAt] })).result;
    expect(stopped.done.finish_reason).toBe("stop");
    expect(stopped.tokens).toEqual(greedy.tokens.slice(0, greedy.tokens.indexOf(stopAt)));
  });

  it("keepGreedyTokens (benchmarks): a sampled request draws, then decodes the greedy tokens", async () => {
    const ids = prompt(20, 17);
    const greedy = await generate(newEngine(), params(ids, { max_tokens: 12 })).result;
    const hot = { temperature: 1.5, top_p: 1, seed: 3, max_tokens: 12 };
    const drawn = await generate(newEngine(), params(ids, hot)).result;
    const kept = await generate(newEngine({ keepGreedyTokens: true }), params(ids, hot)).result;
    expect(drawn.tokens).not.toEqual(greedy.tokens); // the draw really differs at this temperature
    expect(kept.tokens).toEqual(greedy.tokens);
  });

  it("clamps prompt + max_tokens to the context and finishes with model_length", async () => {
    const engine = newEngine({ kvBudgetBytes: 2 * 2 ** 20 });
    const ctx = engine.contextLength;
    const r = await generate(engine, params(prompt(ctx - 3, 14), { max_tokens: 50 })).result;
    expect(r.done.finish_reason).toBe("model_length");
    expect(r.tokens.length).toBe(3);
    expect(() => engine.submit(params(prompt(ctx, 15)), () => {})).toThrow(/context window/);
  });

  it("embeddings are L2-normalised, one per input", async () => {
    const engine = newEngine();
    const out = await engine.embed([prompt(5, 1), prompt(9, 2)]);
    expect(out).toHaveLength(2);
    for (const v of out) {
      expect(v).toHaveLength(runner.manifest.hidden_size);
      expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    }
  });
});

describe("units", () => {
  it("KvPool keeps slots dense, the last slot last, and data intact across growth", () => {
    const pool = new KvPool({ layers: 1, kvHeads: 2, headDim: 2, maxSeq: 1024 }, 1 << 20, 4);
    const rows = (v: number, n: number) => new Float32Array(1 * 2 * 2 * n * 2).fill(v);
    for (let s = 0; s < 4; s++) {
      pool.admit(s, 100);
      pool.writeRows(s, 0, 3, rows(s + 1, 3));
      pool.setLength(s, 3);
    }
    pool.ensureCapacity(200);
    expect(pool.slotCapacity).toBe(256);
    pool.release(0);
    expect(pool.slots).toEqual([2, 1, 3]);
    for (const s of [1, 2, 3]) {
      const out = new Float32Array(24);
      pool.readRows(s, 0, 3, out);
      expect([...out].every((x) => x === s + 1)).toBe(true);
    }
    expect(pool.canAdmit(10)).toBe(true);
  });

  it("PrefixCache verifies tokens and isolates salts", () => {
    const pc = new PrefixCache(4, 1 << 20);
    const toks = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    const hashes = pc.chain(toks, "a");
    let parent = "root";
    hashes.forEach((h, i) => {
      pc.insert({ hash: h, parent, tokens: Int32Array.from(toks.slice(i * 4, i * 4 + 4)), kv: new Float32Array(8) });
      parent = h;
    });
    expect(pc.lookup(toks, "a")).toHaveLength(2);
    expect(pc.lookup(toks.slice(0, 8), "a")).toHaveLength(1); // last token always left to prefill
    expect(pc.lookup(toks, "b")).toHaveLength(0);
    expect(pc.lookup([1, 2, 3, 5, 5, 6, 7, 8, 9], "a")).toHaveLength(0);
  });

  it("Scheduler alternates prefill chunks with decode steps", () => {
    const s = new Scheduler<SchedSeq>({ maxBatch: 4, prefillChunk: 10, maxQueue: 8 });
    const a: SchedSeq = { id: 1, promptLen: 5, pos: 0, state: "waiting" };
    const b: SchedSeq = { id: 2, promptLen: 25, pos: 0, state: "waiting" };
    s.enqueue(a);
    s.enqueue(b);
    s.startPrefill(s.nextAdmission(() => true)!);
    expect(s.nextAdmission(() => true)).toBeNull(); // one prefill at a time
    expect(s.plan()).toMatchObject({ kind: "prefill", len: 5 });
    s.promote(a);
    s.startPrefill(s.nextAdmission(() => true)!);
    const kinds = [0, 1, 2, 3].map(() => s.plan().kind);
    expect(kinds).toEqual(["decode", "prefill", "decode", "prefill"]); // a prefill just ran
  });

  it("seeded sampler is deterministic and greedy picks the argmax", () => {
    const row = Float32Array.from([0.1, 3, 2.9, -1]);
    expect(sampleToken(row, { temperature: 0, top_p: 1, top_k: 0 }, createRng(1))).toBe(1);
    const draw = (seed: number) => {
      const rng = createRng(seed);
      return Array.from({ length: 20 }, () => sampleToken(row, { temperature: 1, top_p: 0.95, top_k: 3 }, rng));
    };
    expect(draw(5)).toEqual(draw(5));
    expect(draw(5).every((t) => t !== 3)).toBe(true); // top-k 3 excludes the worst
  });
});
