/**
 * npm run bench:engine -- [--model models/dev/perf] [--threads 2] [--json] [--spin 0|1] [--tokens 64] [--repeat 7]
 *                         [--graph auto|fused|sliced] [--batch-invariant auto|on|off] [--compare fused|sliced|none]
 * Engine throughput on the real graph through the real engine (scheduler + KV pool + prefix cache):
 *  decode_tok_s          tokens per second of decode steps (= sum of batch sizes / time in decode steps,
 *                        sampling included) with 1, 4, 8 greedy streams
 *  decode_tok_s_sampled  the same at temperature 0.7, top_p 0.9, with 1 and 8 streams. Greedy and sampled runs
 *                        alternate --repeat times, the order flipped each time (default 7: on a shared 2-core host
 *                        one pair of ~0.4 s runs drifts as much as the ratio it measures): each figure is the
 *                        median, and
 *                        sampled_over_greedy is the median of the paired ratios (drift on a shared machine
 *                        hits both sides of a pair); sampled_same_tokens_over_greedy: the same with the sampled run
 *                        decoding the greedy tokens (EngineOptions.keepGreedyTokens), i.e. the sampler's cost alone
 *  decode_tok_s_json     the sampled figure with response_format json_schema (JSON_BENCH_SCHEMA: its minItems
 *                        keeps every stream going for all --tokens), token masks included, after one warm-up
 *                        request with that schema; output tokens (forced ones included) per second of decode
 *                        and chunk steps. Alternated with the greedy and sampled runs: json_over_greedy is the
 *                        median of the paired ratios. Once each: decode_tok_s_json_no_jump (jump-forward off)
 *                        and decode_tok_s_json_ride (forced runs ride decode steps instead of chunk steps)
 *  forced_token_fraction tokens jump-forward appended without sampling / output tokens, in the JSON runs
 *  decode_tok_s_tool     one stream of a forced tool call (TOOL_BENCH_SCHEMA: a [{"name": const, "arguments":
 *                        {...}}] array, greedy), paired with greedy: tool_over_greedy
 *  prefill_tok_s         prompt tokens / prefill time for 128- and 1024-token prompts (prefix cache off)
 *  ttft_ms               submit -> first token for a 1024-token prompt, cold and with 90% of it in the prefix cache
 *  peak_rss_mb           max resident set of this process (the weights file's size beside it)
 *  read_bandwidth_gb_s   the machine's read bandwidth, measured by bandwidth.ts's probe at the start of the run
 *  bandwidth_bound_tok_s decode tok/s if a step cost only reading its weights once (weight-bytes.ts: expected
 *                        bytes per token at 1 and 8 streams / read_bandwidth); bandwidth_fraction is
 *                        decode_tok_s over it, weight_mb_per_token the bytes behind it
 * `--graph` is the measured graph (auto = what the server picks here); `--compare` measures the other MoE
 * form in the same run (default: the other one) and prints the ratios. When the measured graph is the
 * row-padded batch-invariant one (graph-choice.ts), the plain sliced graph's decode is measured too: the cost
 * of invariance. With --json prints ONE JSON object (last line); otherwise a table.
 */
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { parseCli } from "../lib/cli";
import type { GraphForm, ModelManifest } from "../../contract/model-manifest";
import type { GenerateParams } from "../../contract/wire";
import { DEFAULT_ENGINE_OPTIONS, Engine } from "../../gpu-backend/engine/engine";
import { type InvariantChoice, parseGraphChoice, parseInvariantChoice } from "../../gpu-backend/engine/graph-choice";
import { loadModelRunner, type ModelRunner } from "../../gpu-backend/engine/model-runner";
import { callArraySchema, parseToolConfig } from "../../worker/tools";
import { measureReadBandwidth } from "./bandwidth";
import { JSON_BENCH_SCHEMA } from "./json-bench-schema";
import { decodeBytesPerToken } from "./weight-bytes";

const manifestGraphs = (m: ModelManifest) => m.graphs ?? { fused: "model.onnx", sliced: "model.onnx" };

const { values } = parseCli("bench:engine", process.argv.slice(2), {
  usage:
    "usage: npm run bench:engine -- [--model models/dev/perf] [--threads 2] [--json] [--spin 0|1] [--tokens 64] [--repeat 7] [--graph auto|fused|sliced] [--batch-invariant auto|on|off] [--compare fused|sliced|none]",
  options: {
    model: { type: "string", default: "models/dev/perf" },
    threads: { type: "string", default: "2" },
    json: { type: "boolean", default: false },
    spin: { type: "string", default: "1" },
    tokens: { type: "string", default: "64" },
    repeat: { type: "string", default: "7" },
    graph: { type: "string", default: "auto" },
    compare: { type: "string" },
    "batch-invariant": { type: "string", default: "auto" },
  },
});
const dir = path.resolve(values.model!);
if (!existsSync(path.join(dir, "model.json"))) {
  console.error(`${values.model} has no model.json: build it with npm run models -- --preset perf`);
  process.exit(2);
}
const log = (s: string) => (values.json ? console.error(s) : console.log(s));
const threads = Number(values.threads);
const newTokens = Number(values.tokens);
const repeats = Math.max(1, Number(values.repeat));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface Figures {
  graph: GraphForm;
  batch_invariant: boolean;
  decode_tok_s: Record<string, number>;
  decode_tok_s_sampled: Record<string, number>;
  /** Median over the alternated pairs of sampled / greedy decode tok/s. */
  sampled_over_greedy: Record<string, number>;
  /** The same with the sampled run decoding the greedy tokens (EngineOptions.keepGreedyTokens): the sampler's cost alone. */
  sampled_same_tokens_over_greedy: Record<string, number>;
  decode_tok_s_json: Record<string, number>;
  decode_tok_s_json_no_jump: Record<string, number>;
  decode_tok_s_json_ride: Record<string, number>;
  json_over_greedy: Record<string, number>;
  forced_token_fraction: Record<string, number>;
  decode_tok_s_tool: number;
  tool_over_greedy: number;
  prefill_tok_s: Record<string, number>;
  ttft_ms: { cold: number; cached: number };
}

/** Runs requests concurrently; resolves with per-request time to first token (ms). */
function run(engine: Engine, reqs: GenerateParams[]): Promise<number[]> {
  return Promise.all(
    reqs.map(
      (p) =>
        new Promise<number>((resolve) => {
          const t0 = performance.now();
          let ttft = -1;
          engine.submit(p, (out) => {
            if (ttft < 0) ttft = performance.now() - t0;
            if (out.finish) resolve(ttft);
          });
        }),
    ),
  );
}

/**
 * A tool call as a client forces one (a named function, so exactly one call): the grammar the API sends
 * (worker/tools callArraySchema), i.e. [{"name": const, "arguments": {...}}].
 */
const TOOL_BENCH_SCHEMA = callArraySchema(
  parseToolConfig(
    [
      {
        type: "function",
        function: {
          name: "get_current_weather",
          parameters: {
            type: "object",
            properties: {
              location: { type: "string", maxLength: 24 },
              unit: { enum: ["celsius", "fahrenheit"] },
              days: { type: "integer" },
            },
            required: ["location", "unit", "days"],
            additionalProperties: false,
          },
        },
      },
    ],
    { type: "function", function: { name: "get_current_weather" } },
    null,
  )!,
);

async function measure(runner: ModelRunner, decodeOnly = false): Promise<Figures> {
  const V = runner.manifest.vocab_size;
  const prompt = (n: number, seed: number) =>
    Array.from({ length: n }, (_, i) => (((i + 1) * 7919 + seed * 104729) % (V - 600)) + 500);
  const params = (
    ids: number[],
    max_tokens: number,
    sampled = false,
    seed = 0,
    json: false | object = false,
  ): GenerateParams => ({
    model: runner.manifest.name,
    input_ids: ids,
    max_tokens,
    temperature: sampled ? 0.7 : 0,
    top_p: sampled ? 0.9 : 1,
    top_k: 0,
    seed,
    stop_token_ids: [],
    cache_salt: "",
    request_id: "bench",
    ...(json ? { response_format: { type: "json_schema" as const, schema: json } } : {}),
  });
  const mk = (prefixMb: number, jumpForward: boolean | "chunk" | "ride" = true, keepGreedyTokens = false) =>
    new Engine(runner, {
      ...DEFAULT_ENGINE_OPTIONS,
      jumpForward,
      keepGreedyTokens,
      maxBatch: 8,
      kvBudgetBytes: 1024 * 2 ** 20,
      prefixCacheBytes: prefixMb * 2 ** 20,
      prefillChunk: 512,
    });
  const tag = `[${runner.graph.form}${runner.graph.batchInvariant ? ", batch-invariant" : ""}]`;
  await run(mk(0), [params(prompt(16, 0), 4)]); // warm-up

  type Kind = "greedy" | "sampled" | "sampled_cost" | "json" | "json_no_jump" | "json_ride" | "tool";
  /** Output tokens per second of decode (and chunk) steps; the first token of each request is prefill's. */
  const decodeRun = async (n: number, kind: Kind) => {
    const json = kind.startsWith("json");
    const e = mk(0, kind === "json_no_jump" ? false : kind === "json_ride" ? "ride" : "chunk", kind === "sampled_cost");
    const schema = kind === "tool" ? TOOL_BENCH_SCHEMA : json ? JSON_BENCH_SCHEMA : false;
    await run(
      e,
      Array.from({ length: n }, (_, i) =>
        params(prompt(32, i + 1), newTokens, kind.startsWith("sampled") || json, i, schema),
      ),
    );
    const m = e.metrics;
    const tps = (m.completionTokens - n) / m.stepSeconds.decode;
    log(
      `${tag} decode ${kind.padEnd(12)} ${n} stream(s): ${tps.toFixed(1)} tok/s (${((1000 * m.stepSeconds.decode) / m.steps.decode).toFixed(2)} ms/step, ${m.forcedTokens}/${m.completionTokens} forced)`,
    );
    return { tps, forced: m.forcedTokens / m.completionTokens };
  };
  const decode: Record<string, number> = {};
  const sampled: Record<string, number> = {};
  const sampledOverGreedy: Record<string, number> = {};
  const samplerCost: Record<string, number> = {};
  const json: Record<string, number> = {};
  const jsonNoJump: Record<string, number> = {};
  const jsonRide: Record<string, number> = {};
  const jsonOverGreedy: Record<string, number> = {};
  const forced: Record<string, number> = {};
  if (decodeOnly) for (const n of [1, 8]) decode[n] = (await decodeRun(n, "greedy")).tps;
  else {
    // Warm-up (other seeds): the vocabulary trie is built and the schemas' first masks computed, once per
    // process and schema, as a server does on the first request with that schema.
    await run(mk(0), [params(prompt(32, 90), newTokens, true, 90, JSON_BENCH_SCHEMA)]);
    await run(mk(0), [params(prompt(32, 91), newTokens, false, 91, TOOL_BENCH_SCHEMA)]);
    decode[4] = (await decodeRun(4, "greedy")).tps;
    for (const n of [1, 8]) {
      const rows: Array<{ greedy: number; sampled: number; sampledCost: number; json: number; forced: number }> = [];
      for (let r = 0; r < repeats; r++) {
        // The order flips every repetition, so a run's place in the sequence (what ran just before it, the
        // host's drift over the sequence) weighs on each side of a ratio alike.
        const kinds = ["greedy", "sampled", "sampled_cost", "json"] as const;
        const got: Partial<Record<(typeof kinds)[number], { tps: number; forced: number }>> = {};
        for (const k of r % 2 ? [...kinds].reverse() : kinds) got[k] = await decodeRun(n, k);
        const { greedy: g, sampled: s, sampled_cost: c, json: j } = got as Required<typeof got>;
        rows.push({ greedy: g.tps, sampled: s.tps, sampledCost: c.tps, json: j.tps, forced: j.forced });
      }
      // Once each, for comparison with the median greedy figure: jump-forward off, and forced runs riding
      // decode steps instead of chunk steps.
      jsonNoJump[n] = (await decodeRun(n, "json_no_jump")).tps;
      jsonRide[n] = (await decodeRun(n, "json_ride")).tps;
      decode[n] = median(rows.map((p) => p.greedy));
      sampled[n] = median(rows.map((p) => p.sampled));
      sampledOverGreedy[n] = median(rows.map((p) => p.sampled / p.greedy));
      samplerCost[n] = median(rows.map((p) => p.sampledCost / p.greedy));
      json[n] = median(rows.map((p) => p.json));
      jsonOverGreedy[n] = median(rows.map((p) => p.json / p.greedy));
      forced[n] = median(rows.map((p) => p.forced));
    }
  }
  const base = { graph: runner.graph.form, batch_invariant: runner.graph.batchInvariant, decode_tok_s: decode };
  if (decodeOnly)
    return {
      ...base,
      decode_tok_s_sampled: {},
      sampled_over_greedy: {},
      sampled_same_tokens_over_greedy: {},
      decode_tok_s_json: {},
      decode_tok_s_json_no_jump: {},
      decode_tok_s_json_ride: {},
      json_over_greedy: {},
      forced_token_fraction: {},
      decode_tok_s_tool: NaN,
      tool_over_greedy: NaN,
      prefill_tok_s: {},
      ttft_ms: { cold: NaN, cached: NaN },
    };
  const toolPairs: Array<[number, number]> = [];
  for (let r = 0; r < repeats; r++)
    toolPairs.push([(await decodeRun(1, "greedy")).tps, (await decodeRun(1, "tool")).tps]);

  const prefill: Record<string, number> = {};
  for (const n of [128, 1024]) {
    const e = mk(0);
    await run(e, [params(prompt(n, 50 + n), 1)]);
    prefill[n] = n / e.metrics.stepSeconds.prefill;
    log(`${tag} prefill ${n} tokens: ${prefill[n]!.toFixed(1)} tok/s`);
  }

  const e = mk(256);
  const long = prompt(1024, 99);
  const [cold] = await run(e, [params(long, 1)]);
  const [cached] = await run(e, [params([...long.slice(0, 922), ...prompt(102, 100)], 1)]);
  log(
    `${tag} ttft 1024 tokens: cold ${cold!.toFixed(1)} ms, 90% cached ${cached!.toFixed(1)} ms (${e.metrics.cachedTokens} tokens from cache)`,
  );
  return {
    ...base,
    decode_tok_s_sampled: sampled,
    sampled_over_greedy: sampledOverGreedy,
    sampled_same_tokens_over_greedy: samplerCost,
    decode_tok_s_json: json,
    decode_tok_s_json_no_jump: jsonNoJump,
    decode_tok_s_json_ride: jsonRide,
    json_over_greedy: jsonOverGreedy,
    forced_token_fraction: forced,
    decode_tok_s_tool: median(toolPairs.map((p) => p[1])),
    tool_over_greedy: median(toolPairs.map((p) => p[1] / p[0])),
    prefill_tok_s: prefill,
    ttft_ms: { cold: cold!, cached: cached! },
  };
}

const invariant = parseInvariantChoice(values["batch-invariant"]);
const load = (graph: ReturnType<typeof parseGraphChoice>, batchInvariant: InvariantChoice = invariant) =>
  loadModelRunner(dir, { threads, spin: values.spin !== "0", graph, batchInvariant });
// The probe runs before any model is loaded, alone on the machine's threads.
const readBandwidth = await measureReadBandwidth(threads);
log(`read bandwidth (probe, ${threads} threads): ${(readBandwidth / 1e9).toFixed(1)} GB/s`);
const primaryRunner = await load(parseGraphChoice(values.graph));
const padded = primaryRunner.graph.file === manifestGraphs(primaryRunner.manifest).batch_invariant;
log(`graph: ${primaryRunner.graph.reason}`);
const manifest: ModelManifest = primaryRunner.manifest;
const primary = await measure(primaryRunner);
await primaryRunner.release();
// Peak RSS of the measured graph alone, before the comparison loads a second session.
const peak = process.resourceUsage().maxRSS / 1024;
const weightsMb = statSync(path.join(dir, manifest.weights_file)).size / 2 ** 20;
log(
  `peak rss ${peak.toFixed(0)} MB, weights file ${weightsMb.toFixed(0)} MB (model ${manifest.name}, threads ${threads})`,
);

// The cost of invariance: the same form without row padding, decode only.
let unpadded: Figures | undefined;
if (padded) {
  const r = await load(primary.graph, false);
  unpadded = await measure(r, true);
  await r.release();
  log(
    `batch-invariant/plain decode: 1 stream ${(primary.decode_tok_s["1"]! / unpadded.decode_tok_s["1"]!).toFixed(2)}x, 8 streams ${(primary.decode_tok_s["8"]! / unpadded.decode_tok_s["8"]!).toFixed(2)}x`,
  );
}

const other: GraphForm = primary.graph === "sliced" ? "fused" : "sliced";
const compareWith =
  values.compare === "none" || manifest.num_experts === 0 || !manifest.graphs
    ? null
    : ((values.compare as GraphForm | undefined) ?? other);
let comparison: (Figures & { ratio: Record<string, number> }) | undefined;
if (compareWith) {
  const r = await load(compareWith, false);
  const f = await measure(r);
  await r.release();
  const ratio = {
    decode_1: primary.decode_tok_s["1"]! / f.decode_tok_s["1"]!,
    decode_8: primary.decode_tok_s["8"]! / f.decode_tok_s["8"]!,
    prefill_128: primary.prefill_tok_s["128"]! / f.prefill_tok_s["128"]!,
  };
  comparison = { ...f, ratio };
  log(
    `${primary.graph}/${f.graph}: decode 1 stream ${ratio.decode_1.toFixed(2)}x, 8 streams ${ratio.decode_8.toFixed(2)}x, prefill-128 ${ratio.prefill_128.toFixed(2)}x`,
  );
}
const sampledRatio = primary.sampled_over_greedy["1"]!;
log(
  `json/greedy decode (median of ${repeats} alternated pairs): 1 stream ${primary.json_over_greedy["1"]!.toFixed(2)}, 8 streams ${primary.json_over_greedy["8"]!.toFixed(2)}; forced tokens ${(100 * primary.forced_token_fraction["1"]!).toFixed(0)}% / ${(100 * primary.forced_token_fraction["8"]!).toFixed(0)}%; without jump-forward ${(primary.decode_tok_s_json_no_jump["1"]! / primary.decode_tok_s["1"]!).toFixed(2)} / ${(primary.decode_tok_s_json_no_jump["8"]! / primary.decode_tok_s["8"]!).toFixed(2)} of the median greedy; riding decode steps ${(primary.decode_tok_s_json_ride["1"]! / primary.decode_tok_s["1"]!).toFixed(2)} / ${(primary.decode_tok_s_json_ride["8"]! / primary.decode_tok_s["8"]!).toFixed(2)}`,
);
log(
  `tool call (1 stream): ${primary.decode_tok_s_tool.toFixed(1)} tok/s, ${primary.tool_over_greedy.toFixed(2)}x greedy (median of paired runs)`,
);
log(
  `sampled/greedy decode (median of ${repeats} alternated pairs): 1 stream ${sampledRatio.toFixed(2)}, 8 streams ${primary.sampled_over_greedy["8"]!.toFixed(2)}; decoding the greedy tokens (the sampler's cost alone) ${primary.sampled_same_tokens_over_greedy["1"]!.toFixed(2)} / ${primary.sampled_same_tokens_over_greedy["8"]!.toFixed(2)}; cached/cold ttft ${(primary.ttft_ms.cached / primary.ttft_ms.cold).toFixed(3)}`,
);

const streamCounts = ["1", "8"] as const;
const perStream = (f: (n: number) => number) =>
  Object.fromEntries(streamCounts.map((n) => [n, f(Number(n))])) as Record<string, number>;
const weightMb = perStream((n) => decodeBytesPerToken(manifest, n) / 1e6);
const bound = perStream((n) => readBandwidth / decodeBytesPerToken(manifest, n));
const fraction = perStream((n) => primary.decode_tok_s[String(n)]! / bound[String(n)]!);
log(
  `bandwidth bound (${weightMb["1"]!.toFixed(1)} / ${weightMb["8"]!.toFixed(1)} MB of weights per token at 1 / 8 streams): ${bound["1"]!.toFixed(0)} / ${bound["8"]!.toFixed(0)} tok/s; greedy decode reaches ${(100 * fraction["1"]!).toFixed(0)}% / ${(100 * fraction["8"]!).toFixed(0)}% of it`,
);

const result = {
  model: manifest.name,
  threads,
  ...primary,
  sampled_over_greedy_1: sampledRatio,
  peak_rss_mb: Math.round(peak),
  weights_file_mb: Math.round(weightsMb),
  compare: comparison,
  unpadded_decode_tok_s: unpadded?.decode_tok_s,
  read_bandwidth_gb_s: readBandwidth / 1e9,
  weight_mb_per_token: weightMb,
  bandwidth_bound_tok_s: bound,
  bandwidth_fraction: fraction,
};
if (values.json) console.log(JSON.stringify(result));
