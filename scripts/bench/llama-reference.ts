/**
 * npm run bench:llama -- [--model models/dev/perf] [--hf models/hf/perf] [--threads 2] [--alternations 3]
 *                        [--tokens 64] [--streams 8] [--prompt 32] [--prefill 128] [--spin 0|1] [--json] [--check]
 * This project's engine against llama.cpp on the same weights, in one sitting. llama.cpp is node-llama-cpp's
 * prebuilt CPU build, installed on first use into .cache/llama-ref/ (git-ignored, never a project
 * dependency), measured by llama.cpp's own tools built against it (llama-tools.ts), on a Q4_0 GGUF exported
 * from the `--hf` checkpoint (gguf-export.ts; cached, re-exported when the checkpoint changes). The ONNX
 * model in `--model` must be built from the same checkpoint. The two sides alternate `--alternations` times
 * (the order flipped every other time; a tool runs to its end before the Engine starts), each with
 * `--threads` threads:
 *   decode_1     llama-bench tg<tokens>          | the Engine, one greedy stream after a --prompt-token prompt
 *   decode_N     llama-batched-bench -npl N      | the Engine, N greedy streams at once (continuous batching)
 *   prefill_P    llama-bench pp<P>               | the Engine, one P-token prompt to its first token
 * Ours is reported over engine step time (bench:engine's definition, the analogue of the tools' timing of
 * llama_decode) and over wall clock (engine-runs.ts); ours/llama.cpp is the median of the paired ratios.
 * Also prints llama.cpp's CPU feature line and backend variant, and how much CPU other processes took
 * meanwhile (machine-load.ts). --json prints one JSON object last. --check instead validates the export
 * against the fp32 reference forward (llama-check.ts; default checkpoint models/hf/small).
 */
import { existsSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import path from "node:path";
import type { ModelManifest } from "../../contract/model-manifest";
import { loadModelRunner } from "../../gpu-backend/engine/model-runner";
import { parseCli, runCli, UsageError } from "../lib/cli";
import { sourceChecksum } from "../model-builder/build";
import { openCheckpoint } from "../model-builder/safetensors";
import { exportGguf, exportKey } from "./gguf-export";
import { readGgufHeader } from "./gguf-reader";
import { withForeignLoad } from "./machine-load";
import { type Figure, oursDecode, oursPrefill } from "./engine-runs";
import { NODE_LLAMA_CPP_VERSION, loadLlamaRuntime } from "./llama-cpp";
import { checkExport } from "./llama-check";
import { type LlamaBenchResult, batchedBench, ensureLlamaTools, llamaBench } from "./llama-tools";

const root = path.resolve(import.meta.dirname, "../..");
const cacheDir = path.join(root, ".cache/llama-ref");

const { values } = parseCli("bench:llama", process.argv.slice(2), {
  usage:
    "usage: npm run bench:llama -- [--model models/dev/perf] [--hf models/hf/perf] [--threads 2] [--alternations 3] [--tokens 64] [--streams 8] [--prompt 32] [--prefill 128] [--spin 0|1] [--json] [--check]",
  options: {
    model: { type: "string", default: "models/dev/perf" },
    hf: { type: "string" },
    threads: { type: "string", default: "2" },
    alternations: { type: "string", default: "3" },
    tokens: { type: "string", default: "64" },
    streams: { type: "string", default: "8" },
    prompt: { type: "string", default: "32" },
    prefill: { type: "string", default: "128" },
    spin: { type: "string", default: "1" },
    json: { type: "boolean", default: false },
    check: { type: "boolean", default: false },
  },
});

const log = (s: string) => (values.json ? console.error(s) : console.log(s));
const int = (flag: string, min = 1) => {
  const v = Number(values[flag as keyof typeof values]);
  if (!Number.isInteger(v) || v < min) throw new UsageError(`--${flag} must be an integer >= ${min}`);
  return v;
};
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const r1 = (x: number) => Number(x.toFixed(1));
const r3 = (x: number) => Number(x.toFixed(3));
/** The prompts bench:engine uses: deterministic ids away from the special and byte pieces. */
const prompt = (n: number, seed: number, V: number) =>
  Array.from({ length: n }, (_, i) => (((i + 1) * 7919 + seed * 104729) % (V - 600)) + 500);
const pause = () => new Promise((r) => setTimeout(r, 300));

/** The cached Q4_0 export of `hfDir`, written when missing or made from another checkpoint or exporter. */
async function cachedGguf(hfDir: string): Promise<{ file: string; checksum: string }> {
  const file = path.join(cacheDir, "models", `${path.basename(hfDir)}.Q4_0.gguf`);
  const ckpt = await openCheckpoint(hfDir);
  const checksum = sourceChecksum(ckpt);
  await ckpt.close();
  if (existsSync(file)) {
    const kv = (await readGgufHeader(file)).kv;
    if (kv.get("moe_edge.source_checksum") === checksum && kv.get("moe_edge.export") === exportKey()) {
      return { file, checksum };
    }
  }
  log(`exporting ${path.relative(root, hfDir)} to ${path.relative(root, file)} (Q4_0, output Q6_K)`);
  const t0 = performance.now();
  const r = await exportGguf(hfDir, file);
  log(`  ${(r.bytes / 2 ** 20).toFixed(0)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { file, checksum };
}

interface LlamaSide {
  /** llama-bench tg<tokens>: single-token decode from an empty context. */
  decode1: number;
  /** llama-batched-bench, 1 sequence after a --prompt-token prompt. */
  decode1Prompted: number;
  /** llama-batched-bench, --streams sequences decoded together after their prompts. */
  decodeN: number;
  /** llama-bench pp<prefill>. */
  prefill: number;
  bench: LlamaBenchResult;
  others: number | null;
}
interface OursSide {
  decode1: Figure;
  decodeN: Figure;
  prefill: Figure;
  others: number | null;
}

async function bench(): Promise<void> {
  const threads = int("threads");
  const alternations = int("alternations");
  const tokens = int("tokens");
  const streams = int("streams", 2);
  const promptLen = int("prompt");
  const prefillLen = int("prefill");
  const modelDir = path.resolve(values.model!);
  const hfDir = path.resolve(values.hf ?? "models/hf/perf");
  if (!existsSync(path.join(modelDir, "model.json"))) {
    throw new Error(`${values.model} has no model.json: build it with npm run models -- --preset perf`);
  }
  const manifest = JSON.parse(readFileSync(path.join(modelDir, "model.json"), "utf8")) as ModelManifest;
  const gguf = await cachedGguf(hfDir);
  if (manifest.source.checksum !== gguf.checksum) {
    throw new Error(`${values.model} was not built from ${values.hf ?? "models/hf/perf"} (source checksums differ)`);
  }
  const tools = await ensureLlamaTools(cacheDir, log);
  // The CPU feature line of the same libraries the tools run on (no model is loaded).
  const rt = await loadLlamaRuntime(cacheDir, threads, log);
  const { systemInfo, llamaCppRelease } = rt;
  await rt.llama.dispose();

  const runner = await loadModelRunner(modelDir, { threads, spin: values.spin !== "0" });
  const V = manifest.vocab_size;
  const one = [prompt(promptLen, 1, V)];
  const many = Array.from({ length: streams }, (_, i) => prompt(promptLen, i + 1, V));
  const long = prompt(prefillLen, 50 + prefillLen, V);

  const llamaSide = async (): Promise<LlamaSide> => {
    const { value, others } = await withForeignLoad(async () => {
      const b = await llamaBench(tools, gguf.file, threads, prefillLen, tokens);
      const bb = await batchedBench(tools, gguf.file, threads, promptLen, tokens, [1, streams]);
      return { decode1: b.tgTps, decode1Prompted: bb.get(1)!, decodeN: bb.get(streams)!, prefill: b.ppTps, bench: b };
    });
    return { ...value, others };
  };
  const oursSide = async (): Promise<OursSide> => {
    const { value, others } = await withForeignLoad(async () => ({
      decode1: await oursDecode(runner, one, tokens),
      decodeN: await oursDecode(runner, many, tokens),
      prefill: await oursPrefill(runner, long),
    }));
    return { ...value, others };
  };

  log(`model ${manifest.name}, ${threads} threads; ours: ${runner.graph.reason}`);
  log(
    `llama.cpp: ${path.relative(root, gguf.file)}, llama-bench and llama-batched-bench from node-llama-cpp ${NODE_LLAMA_CPP_VERSION} (llama.cpp ${llamaCppRelease})`,
  );
  const loadStart = loadavg().map((x) => Number(x.toFixed(2)));
  // Warm-up, untimed: the weights into the page cache and first-touched, ORT's arena, both thread pools.
  const warm = await llamaSide();
  log(
    `llama.cpp CPU backend ${warm.bench.backend ?? "?"} (${warm.bench.cpuInfo}), threadpool poll ${warm.bench.poll}, flash attention ${warm.bench.flashAttn === -1 ? "auto" : warm.bench.flashAttn}`,
  );
  log(`llama.cpp system info: ${systemInfo}`);
  await pause();
  await oursSide();

  const rows: Array<{ llama: LlamaSide; ours: OursSide }> = [];
  const share = (x: number | null) => (x === null ? "" : `, others ${(100 * x).toFixed(0)}% of the CPUs`);
  for (let a = 0; a < alternations; a++) {
    let llama: LlamaSide;
    let ours: OursSide;
    await pause();
    if (a % 2) {
      ours = await oursSide();
      await pause();
      llama = await llamaSide();
    } else {
      llama = await llamaSide();
      await pause();
      ours = await oursSide();
    }
    rows.push({ llama, ours });
    log(
      `alternation ${a + 1}${a % 2 ? " (ours first)" : ""}: llama.cpp decode 1 ${llama.decode1.toFixed(1)} (after the prompt ${llama.decode1Prompted.toFixed(1)}), decode ${streams} ${llama.decodeN.toFixed(1)}, prefill ${prefillLen} ${llama.prefill.toFixed(1)} tok/s${share(llama.others)}`,
    );
    log(
      `${" ".repeat(`alternation ${a + 1}${a % 2 ? " (ours first)" : ""}: `.length - 5)}ours decode 1 ${ours.decode1.stepTps.toFixed(1)} (wall ${ours.decode1.tps.toFixed(1)}), decode ${streams} ${ours.decodeN.stepTps.toFixed(1)} (wall ${ours.decodeN.tps.toFixed(1)}), prefill ${prefillLen} ${ours.prefill.stepTps.toFixed(1)} (wall ${ours.prefill.tps.toFixed(1)}) tok/s${share(ours.others)}`,
    );
  }

  const measures = [
    {
      key: "decode_1",
      llama: (r: LlamaSide) => r.decode1,
      ours: (r: OursSide) => r.decode1,
      ref: `llama-bench -t ${threads} -n ${tokens} (tg${tokens})`,
    },
    {
      key: `decode_${streams}`,
      llama: (r: LlamaSide) => r.decodeN,
      ours: (r: OursSide) => r.decodeN,
      ref: `llama-batched-bench -npp ${promptLen} -ntg ${tokens} -npl ${streams} (S_TG)`,
    },
    {
      key: `prefill_${prefillLen}`,
      llama: (r: LlamaSide) => r.prefill,
      ours: (r: OursSide) => r.prefill,
      ref: `llama-bench -t ${threads} -p ${prefillLen} (pp${prefillLen})`,
    },
  ];
  const figures = Object.fromEntries(
    measures.map((m) => {
      const l = rows.map((r) => m.llama(r.llama));
      const steps = rows.map((r) => m.ours(r.ours).stepTps);
      const wall = rows.map((r) => m.ours(r.ours).tps);
      return [
        m.key,
        {
          llama_cpp_reference: m.ref,
          llama_cpp: l.map(r1),
          ours_steps: steps.map(r1),
          ours_wall: wall.map(r1),
          median_llama_cpp: r1(median(l)),
          median_ours_steps: r1(median(steps)),
          median_ours_wall: r1(median(wall)),
          ours_over_llama_cpp: r3(median(steps.map((x, i) => x / l[i]))),
          ours_wall_over_llama_cpp: r3(median(wall.map((x, i) => x / l[i]))),
        },
      ];
    }),
  );
  const prompted = rows.map((r) => r.llama.decode1Prompted);
  log(`\nmedians of ${alternations} alternations (tok/s); ours/llama.cpp = median of the paired ratios`);
  log(
    `  ${"".padEnd(12)} ${"llama.cpp".padStart(9)} ${"ours".padStart(8)} ${"ratio".padStart(6)} ${"ours wall".padStart(10)} ${"ratio".padStart(6)}   llama.cpp figure`,
  );
  for (const [k, v] of Object.entries(figures)) {
    log(
      `  ${k.padEnd(12)} ${String(v.median_llama_cpp).padStart(9)} ${String(v.median_ours_steps).padStart(8)} ${String(v.ours_over_llama_cpp).padStart(6)} ${String(v.median_ours_wall).padStart(10)} ${String(v.ours_wall_over_llama_cpp).padStart(6)}   ${v.llama_cpp_reference}`,
    );
  }
  log(
    `  (llama.cpp decode 1 after a ${promptLen}-token prompt, llama-batched-bench -npl 1: median ${r1(median(prompted))})`,
  );
  const pct = (x: number | null) => (x === null ? null : Math.round(100 * x));
  const others = { llama_cpp_pct: rows.map((r) => pct(r.llama.others)), ours_pct: rows.map((r) => pct(r.ours.others)) };
  const load = { start: loadStart, end: loadavg().map((x) => Number(x.toFixed(2))) };
  log(
    `load average ${load.start.join(" ")} at the start, ${load.end.join(" ")} at the end; other processes' share of the CPUs per alternation: during llama.cpp ${others.llama_cpp_pct.join(", ")} %, during ours ${others.ours_pct.join(", ")} %`,
  );
  await runner.release();
  if (values.json)
    console.log(
      JSON.stringify({
        model: manifest.name,
        threads,
        alternations,
        tokens,
        streams,
        prompt_tokens: promptLen,
        prefill_tokens: prefillLen,
        llama_cpp: {
          release: llamaCppRelease,
          node_llama_cpp: NODE_LLAMA_CPP_VERSION,
          cpu_backend: warm.bench.backend,
          cpu_info: warm.bench.cpuInfo,
          system_info: systemInfo,
          threadpool_poll: warm.bench.poll,
          flash_attn: warm.bench.flashAttn,
          gguf: path.relative(root, gguf.file),
          decode_1_after_prompt: prompted.map(r1),
        },
        ours_graph: runner.graph.reason,
        ...figures,
        others_cpu: others,
        loadavg: load,
      }),
    );
}

runCli("bench:llama", async () => {
  if (values.check) {
    const hf = path.resolve(values.hf ?? "models/hf/small");
    const r = await checkExport(hf, cacheDir, int("threads"), log);
    if (values.json) console.log(JSON.stringify(r));
    return;
  }
  await bench();
});
