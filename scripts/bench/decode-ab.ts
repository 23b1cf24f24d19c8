/**
 * npx tsx scripts/bench/decode-ab.ts --a <tree> --b <tree> [--a-env JSON] [--b-env JSON] [--model models/dev/perf]
 *                                    [--a-model dir] [--b-model dir] [--blocks 7] [--tokens 24] [--streams 1,8]
 *                                    [--prompt 32] [--spin 0|1]
 * Paired A/B of greedy decode tok/s through the real Engine, for changes whose effect is smaller than a shared
 * machine's drift. Both sides load in ONE process (two runners; `--a`/`--b` are checkouts of this repo, e.g. a
 * `git worktree` of the previous commit and this one, or the same tree twice with different `--x-env`
 * environment applied while that side loads and runs, or two builds of a model with `--x-model`) and alternate blocks of `--tokens` tokens, the order
 * flipped every pair. Prints per stream count the tok/s of each block, their medians, the median of the paired
 * ratios B/A, the same for process CPU time per token, and the paired ratio of prefill tok/s (each stream's
 * `--prompt`-token prompt, one prefill step each). A worktree side must reach this tree's node_modules through a
 * symlink: two copies of onnxruntime-node's native addon in one process abort.
 */
import path from "node:path";
import type { Engine as EngineT, EngineOptions } from "../../gpu-backend/engine/engine";
import type { ModelRunner, RunnerOptions } from "../../gpu-backend/engine/model-runner";
import { parseCli } from "../lib/cli";

const { values } = parseCli("decode-ab", process.argv.slice(2), {
  usage:
    "usage: npx tsx scripts/bench/decode-ab.ts --a <tree> --b <tree> [--a-env JSON] [--b-env JSON] [--model models/dev/perf] [--a-model dir] [--b-model dir] [--blocks 7] [--tokens 24] [--streams 1,8] [--prompt 32] [--spin 0|1]",
  options: {
    a: { type: "string", default: "." },
    b: { type: "string", default: "." },
    "a-env": { type: "string", default: "{}" },
    "b-env": { type: "string", default: "{}" },
    model: { type: "string", default: "models/dev/perf" },
    "a-model": { type: "string" },
    "b-model": { type: "string" },
    blocks: { type: "string", default: "7" },
    tokens: { type: "string", default: "24" },
    streams: { type: "string", default: "1,8" },
    spin: { type: "string", default: "1" },
    prompt: { type: "string", default: "32" },
  },
});

interface Side {
  env: Record<string, string>;
  runner: ModelRunner;
  Engine: typeof EngineT;
  options: EngineOptions;
}

/** Runs `f` with `env` set in process.env, restoring it after. */
async function withEnv<T>(env: Record<string, string>, f: () => Promise<T>): Promise<T> {
  const old = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await f();
  } finally {
    for (const [k, v] of Object.entries(old)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

async function side(tree: string, envJson: string, model: string): Promise<Side> {
  const env = JSON.parse(envJson) as Record<string, string>;
  const root = path.resolve(tree);
  const mr = (await import(path.join(root, "gpu-backend/engine/model-runner.ts"))) as {
    loadModelRunner: (dir: string, o: RunnerOptions) => Promise<ModelRunner>;
  };
  const en = (await import(path.join(root, "gpu-backend/engine/engine.ts"))) as {
    Engine: typeof EngineT;
    DEFAULT_ENGINE_OPTIONS: EngineOptions;
  };
  const runner = await withEnv(env, () =>
    mr.loadModelRunner(path.resolve(model), { threads: 2, spin: values.spin !== "0" }),
  );
  const options = {
    ...en.DEFAULT_ENGINE_OPTIONS,
    maxBatch: 8,
    kvBudgetBytes: 1024 * 2 ** 20,
    prefixCacheBytes: 0,
    prefillChunk: 512,
  };
  return { env, runner, Engine: en.Engine, options };
}

const A = await side(values.a!, values["a-env"]!, values["a-model"] ?? values.model!);
const B = await side(values.b!, values["b-env"]!, values["b-model"] ?? values.model!);
const V = A.runner.manifest.vocab_size;
const prompt = (n: number, seed: number) =>
  Array.from({ length: n }, (_, i) => (((i + 1) * 7919 + seed * 104729) % (V - 600)) + 500);

const promptLen = Number(values.prompt);

interface Block {
  tps: number;
  cpuMs: number;
  prefillTps: number;
}

/** Decode tok/s of `n` greedy streams, process CPU ms per output token, prefill tok/s. */
function decode(s: Side, n: number, tokens: number): Promise<Block> {
  return withEnv(s.env, async () => {
    const c0 = process.cpuUsage();
    const e = new s.Engine(s.runner, s.options);
    await Promise.all(
      Array.from(
        { length: n },
        (_, i) =>
          new Promise<void>((resolve) => {
            e.submit(
              {
                model: s.runner.manifest.name,
                input_ids: prompt(promptLen, i + 1),
                max_tokens: tokens,
                temperature: 0,
                top_p: 1,
                top_k: 0,
                seed: i,
                stop_token_ids: [],
                cache_salt: "",
                request_id: "ab",
              },
              (o) => {
                if (o.finish) resolve();
              },
            );
          }),
      ),
    );
    const c = process.cpuUsage(c0);
    return {
      tps: (e.metrics.completionTokens - n) / e.metrics.stepSeconds.decode,
      cpuMs: (c.user + c.system) / 1000 / e.metrics.completionTokens,
      prefillTps: (n * promptLen) / e.metrics.stepSeconds.prefill,
    };
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const r = (x: number, d = 1) => Number(x.toFixed(d));
const tokens = Number(values.tokens);
for (const n of values.streams!.split(",").map(Number)) {
  await decode(A, n, 8);
  await decode(B, n, 8);
  const pairs: Array<{ a: Block; b: Block }> = [];
  for (let i = 0; i < Number(values.blocks); i++) {
    if (i % 2) {
      const b = await decode(B, n, tokens);
      pairs.push({ b, a: await decode(A, n, tokens) });
    } else {
      const a = await decode(A, n, tokens);
      pairs.push({ a, b: await decode(B, n, tokens) });
    }
  }
  console.log(
    JSON.stringify({
      streams: n,
      a: pairs.map((p) => r(p.a.tps)),
      b: pairs.map((p) => r(p.b.tps)),
      med_a: r(median(pairs.map((p) => p.a.tps))),
      med_b: r(median(pairs.map((p) => p.b.tps))),
      b_over_a: r(median(pairs.map((p) => p.b.tps / p.a.tps)), 3),
      ratios: pairs.map((p) => r(p.b.tps / p.a.tps, 3)),
      cpu_ms_per_tok_a: r(median(pairs.map((p) => p.a.cpuMs)), 2),
      cpu_ms_per_tok_b: r(median(pairs.map((p) => p.b.cpuMs)), 2),
      cpu_b_over_a: r(median(pairs.map((p) => p.b.cpuMs / p.a.cpuMs)), 3),
      prefill_a: r(median(pairs.map((p) => p.a.prefillTps))),
      prefill_b: r(median(pairs.map((p) => p.b.prefillTps))),
      prefill_b_over_a: r(median(pairs.map((p) => p.b.prefillTps / p.a.prefillTps)), 3),
      prefill_ratios: pairs.map((p) => r(p.b.prefillTps / p.a.prefillTps, 3)),
    }),
  );
}
await A.runner.release();
await B.runner.release();
