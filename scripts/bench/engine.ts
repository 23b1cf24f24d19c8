/**
 * npm run bench:engine -- [--model models/dev/perf] [--threads 2] [--json] [--spin 0|1] [--tokens 64]
 * Engine throughput on the real graph through the real engine (scheduler + KV pool + prefix cache):
 *  decode_tok_s  tokens per second of decode steps (= sum of batch sizes / time in decode steps) with 1, 4, 8 streams
 *  prefill_tok_s prompt tokens / prefill time for 128- and 1024-token prompts (prefix cache off)
 *  ttft_ms       submit -> first token for a 1024-token prompt, cold and with 90% of it in the prefix cache
 *  peak_rss_mb   max resident set of this process
 * With --json prints ONE JSON object (last line); otherwise a table.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import type { GenerateParams } from "../../contract/wire";
import { DEFAULT_ENGINE_OPTIONS, Engine } from "../../gpu-backend/engine/engine";
import { loadModelRunner } from "../../gpu-backend/engine/model-runner";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    model: { type: "string", default: "models/dev/perf" },
    threads: { type: "string", default: "2" },
    json: { type: "boolean", default: false },
    spin: { type: "string", default: "1" },
    tokens: { type: "string", default: "64" },
  },
});
const dir = path.resolve(values.model!);
if (!existsSync(path.join(dir, "model.json"))) {
  console.error(`${values.model} has no model.json: build it with npm run models -- --preset perf`);
  process.exit(2);
}
const log = (s: string) => (values.json ? console.error(s) : console.log(s));
const runner = await loadModelRunner(dir, { threads: Number(values.threads), spin: values.spin !== "0" });
const V = runner.manifest.vocab_size;
const newTokens = Number(values.tokens);
const prompt = (n: number, seed: number) => Array.from({ length: n }, (_, i) => ((i + 1) * 7919 + seed * 104729) % (V - 600) + 500);
const params = (ids: number[], max_tokens: number, salt = ""): GenerateParams => ({
  model: runner.manifest.name, input_ids: ids, max_tokens, temperature: 0, top_p: 1, top_k: 0, stop_token_ids: [], cache_salt: salt, request_id: "bench",
});

/** Runs requests concurrently; resolves with per-request time to first token (ms). */
function run(engine: Engine, reqs: GenerateParams[]): Promise<number[]> {
  return Promise.all(
    reqs.map(
      (p) =>
        new Promise<number>((resolve) => {
          const t0 = performance.now();
          let ttft = -1;
          engine.submit(p, (ev) => {
            if (ttft < 0) ttft = performance.now() - t0;
            if (ev.type === "done") resolve(ttft);
          });
        }),
    ),
  );
}

const mk = (prefixMb: number) =>
  new Engine(runner, { ...DEFAULT_ENGINE_OPTIONS, maxBatch: 8, kvBudgetBytes: 1024 * 2 ** 20, prefixCacheBytes: prefixMb * 2 ** 20, prefillChunk: 512 });

// warm-up
await run(mk(0), [params(prompt(16, 0), 4)]);

const decode: Record<string, number> = {};
for (const n of [1, 4, 8]) {
  const e = mk(0);
  await run(e, Array.from({ length: n }, (_, i) => params(prompt(32, i + 1), newTokens)));
  decode[n] = e.metrics.decodeBatchSum / e.metrics.stepSeconds.decode;
  log(`decode  ${n} stream(s): ${decode[n]!.toFixed(1)} tok/s (${(1000 * e.metrics.stepSeconds.decode / e.metrics.steps.decode).toFixed(2)} ms/step)`);
}

const prefill: Record<string, number> = {};
for (const n of [128, 1024]) {
  const e = mk(0);
  await run(e, [params(prompt(n, 50 + n), 1)]);
  prefill[n] = n / e.metrics.stepSeconds.prefill;
  log(`prefill ${n} tokens: ${prefill[n]!.toFixed(1)} tok/s`);
}

const e = mk(256);
const base = prompt(1024, 99);
const [cold] = await run(e, [params(base, 1)]);
const variant = [...base.slice(0, 922), ...prompt(102, 100)];
const [cached] = await run(e, [params(variant, 1)]);
log(`ttft 1024 tokens: cold ${cold!.toFixed(1)} ms, 90% cached ${cached!.toFixed(1)} ms (${e.metrics.cachedTokens} tokens from cache)`);

const peak = process.resourceUsage().maxRSS / 1024;
log(`peak rss ${peak.toFixed(0)} MB (model ${runner.manifest.name}, threads ${values.threads})`);
const result = {
  model: runner.manifest.name,
  threads: Number(values.threads),
  decode_tok_s: decode,
  prefill_tok_s: prefill,
  ttft_ms: { cold: cold!, cached: cached! },
  peak_rss_mb: Math.round(peak),
};
if (values.json) console.log(JSON.stringify(result));
await runner.release();
