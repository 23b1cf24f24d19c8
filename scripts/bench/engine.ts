/**
 * npm run bench:engine -- [--model models/dev/perf] [--threads 2] [--json] [--spin 0|1] [--tokens 64] [--repeat 3]
 *                         [--graph auto|fused|sliced] [--batch-invariant auto|on|off] [--compare fused|sliced|none]
 * Engine throughput on the real graph through the real engine (scheduler + KV pool + prefix cache):
 *  decode_tok_s          tokens per second of decode steps (= sum of batch sizes / time in decode steps,
 *                        sampling included) with 1, 4, 8 greedy streams
 *  decode_tok_s_sampled  the same at temperature 0.7, top_p 0.9, with 1 and 8 streams. Greedy and sampled runs
 *                        alternate --repeat times (default 3): each figure is the median, and
 *                        sampled_over_greedy is the median of the paired ratios (drift on a shared machine
 *                        hits both sides of a pair)
 *  decode_tok_s_json     the sampled figure with response_format json_schema (JSON_BENCH_SCHEMA: its minItems
 *                        keeps every stream going for all --tokens), token masks included, after one warm-up
 *                        request with that schema
 *  decode_tok_s_tool     the same with tool_choice "required"'s call grammar (worker/tools: an array of
 *                        {name, arguments} over TOOL_BENCH_TOOLS, whose record_items arguments keep every stream
 *                        going), beside the JSON figure; tool_over_greedy is its ratio to greedy decode
 *  prefill_tok_s         prompt tokens / prefill time for 128- and 1024-token prompts (prefix cache off)
 *  ttft_ms               submit -> first token for a 1024-token prompt, cold and with 90% of it in the prefix cache
 *  peak_rss_mb           max resident set of this process (the weights file's size beside it)
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

const manifestGraphs = (m: ModelManifest) => m.graphs ?? { fused: "model.onnx", sliced: "model.onnx" };

const { values } = parseCli("bench:engine", process.argv.slice(2), {
  usage:
    "usage: npm run bench:engine -- [--model models/dev/perf] [--threads 2] [--json] [--spin 0|1] [--tokens 64] [--repeat 3] [--graph auto|fused|sliced] [--batch-invariant auto|on|off] [--compare fused|sliced|none]",
  options: {
    model: { type: "string", default: "models/dev/perf" },
    threads: { type: "string", default: "2" },
    json: { type: "boolean", default: false },
    spin: { type: "string", default: "1" },
    tokens: { type: "string", default: "64" },
    repeat: { type: "string", default: "3" },
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
  decode_tok_s_json: Record<string, number>;
  decode_tok_s_tool: Record<string, number>;
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
          engine.submit(p, (ev) => {
            if (ttft < 0) ttft = performance.now() - t0;
            if (ev.type === "done") resolve(ttft);
          });
        }),
    ),
  );
}

/** Objects with an integer, an enum and a short string: many distinct automaton states, none of them final. */
const JSON_BENCH_SCHEMA = {
  type: "object",
  properties: {
    items: {
      type: "array",
      minItems: 64,
      items: {
        type: "object",
        properties: {
          id: { type: "integer" },
          tag: { enum: ["alpha", "beta", "gamma"] },
          note: { type: "string", maxLength: 8 },
        },
        required: ["id", "tag", "note"],
        additionalProperties: false,
      },
    },
  },
  required: ["items"],
  additionalProperties: false,
};

/** Two functions, so the grammar is a real anyOf; record_items' minItems keeps every call going. */
const TOOL_BENCH_TOOLS = [
  { type: "function", function: { name: "record_items", parameters: JSON_BENCH_SCHEMA } },
  {
    type: "function",
    function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } },
  },
];
const TOOL_BENCH_SCHEMA = callArraySchema(parseToolConfig(TOOL_BENCH_TOOLS, "required", false)!);

type Format = "none" | "json" | "tool";
const formats = {
  none: {},
  json: { response_format: { type: "json_schema" as const, schema: JSON_BENCH_SCHEMA } },
  tool: { response_format: { type: "json_schema" as const, schema: TOOL_BENCH_SCHEMA } },
};

async function measure(runner: ModelRunner, decodeOnly = false): Promise<Figures> {
  const V = runner.manifest.vocab_size;
  const prompt = (n: number, seed: number) =>
    Array.from({ length: n }, (_, i) => (((i + 1) * 7919 + seed * 104729) % (V - 600)) + 500);
  const params = (
    ids: number[],
    max_tokens: number,
    sampled = false,
    seed = 0,
    format: Format = "none",
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
    ...formats[format],
  });
  const mk = (prefixMb: number) =>
    new Engine(runner, {
      ...DEFAULT_ENGINE_OPTIONS,
      maxBatch: 8,
      kvBudgetBytes: 1024 * 2 ** 20,
      prefixCacheBytes: prefixMb * 2 ** 20,
      prefillChunk: 512,
    });
  const tag = `[${runner.graph.form}${runner.graph.batchInvariant ? ", batch-invariant" : ""}]`;
  await run(mk(0), [params(prompt(16, 0), 4)]); // warm-up

  const decodeRun = async (n: number, sampled: boolean, format: Format = "none") => {
    const e = mk(0);
    await run(
      e,
      Array.from({ length: n }, (_, i) => params(prompt(32, i + 1), newTokens, sampled, i, format)),
    );
    const tps = e.metrics.decodeBatchSum / e.metrics.stepSeconds.decode;
    const label = format !== "none" ? format.padEnd(7) : sampled ? "sampled" : "greedy ";
    log(
      `${tag} decode ${label} ${n} stream(s): ${tps.toFixed(1)} tok/s (${((1000 * e.metrics.stepSeconds.decode) / e.metrics.steps.decode).toFixed(2)} ms/step)`,
    );
    return tps;
  };
  const decode: Record<string, number> = {};
  const sampled: Record<string, number> = {};
  const sampledOverGreedy: Record<string, number> = {};
  if (decodeOnly) for (const n of [1, 8]) decode[n] = await decodeRun(n, false);
  else {
    decode[4] = await decodeRun(4, false);
    for (const n of [1, 8]) {
      const pairs: Array<[number, number]> = [];
      for (let r = 0; r < repeats; r++) pairs.push([await decodeRun(n, false), await decodeRun(n, true)]);
      decode[n] = median(pairs.map((p) => p[0]));
      sampled[n] = median(pairs.map((p) => p[1]));
      sampledOverGreedy[n] = median(pairs.map((p) => p[1] / p[0]));
    }
  }
  const base = { graph: runner.graph.form, batch_invariant: runner.graph.batchInvariant, decode_tok_s: decode };
  if (decodeOnly)
    return {
      ...base,
      decode_tok_s_sampled: {},
      sampled_over_greedy: {},
      decode_tok_s_json: {},
      decode_tok_s_tool: {},
      prefill_tok_s: {},
      ttft_ms: { cold: NaN, cached: NaN },
    };
  // Warm-up (other seeds): the vocabulary trie is built and the schema's first masks computed, once per
  // process and schema, as a server does on the first request with that schema.
  await run(mk(0), [params(prompt(32, 90), newTokens, true, 90, "json")]);
  const json: Record<string, number> = {};
  for (const n of [1, 8]) json[n] = await decodeRun(n, true, "json");
  await run(mk(0), [params(prompt(32, 91), newTokens, true, 91, "tool")]);
  const tool: Record<string, number> = {};
  for (const n of [1, 8]) tool[n] = await decodeRun(n, true, "tool");

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
    decode_tok_s_json: json,
    decode_tok_s_tool: tool,
    prefill_tok_s: prefill,
    ttft_ms: { cold: cold!, cached: cached! },
  };
}

const invariant = parseInvariantChoice(values["batch-invariant"]);
const load = (graph: ReturnType<typeof parseGraphChoice>, batchInvariant: InvariantChoice = invariant) =>
  loadModelRunner(dir, { threads, spin: values.spin !== "0", graph, batchInvariant });
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
const toolOverGreedy = {
  "1": primary.decode_tok_s_tool["1"]! / primary.decode_tok_s["1"]!,
  "8": primary.decode_tok_s_tool["8"]! / primary.decode_tok_s["8"]!,
};
log(
  `json/sampled decode: 1 stream ${(primary.decode_tok_s_json["1"]! / primary.decode_tok_s_sampled["1"]!).toFixed(2)}, 8 streams ${(primary.decode_tok_s_json["8"]! / primary.decode_tok_s_sampled["8"]!).toFixed(2)}`,
);
log(
  `tool-call/greedy decode: 1 stream ${toolOverGreedy["1"].toFixed(2)}, 8 streams ${toolOverGreedy["8"].toFixed(2)} (json/greedy ${(primary.decode_tok_s_json["1"]! / primary.decode_tok_s["1"]!).toFixed(2)}, ${(primary.decode_tok_s_json["8"]! / primary.decode_tok_s["8"]!).toFixed(2)})`,
);
log(
  `sampled/greedy decode (median of ${repeats} alternated pairs): 1 stream ${sampledRatio.toFixed(2)}, 8 streams ${primary.sampled_over_greedy["8"]!.toFixed(2)}; cached/cold ttft ${(primary.ttft_ms.cached / primary.ttft_ms.cold).toFixed(3)}`,
);

const result = {
  model: manifest.name,
  threads,
  ...primary,
  sampled_over_greedy_1: sampledRatio,
  tool_over_greedy: toolOverGreedy,
  peak_rss_mb: Math.round(peak),
  weights_file_mb: Math.round(weightsMb),
  compare: comparison,
  unpadded_decode_tok_s: unpadded?.decode_tok_s,
};
if (values.json) console.log(JSON.stringify(result));
