/**
 * npm run bench:llama -- [--model models/dev/perf] [--hf models/hf/perf] [--threads 2] [--alternations 3]
 *                        [--tokens 64] [--streams 8] [--prompt 32] [--prefill 128] [--spin 0|1] [--json] [--check]
 * This project's engine against llama.cpp on the same weights, in one sitting. llama.cpp is node-llama-cpp's
 * prebuilt CPU build, installed on first use into .cache/llama-ref/ (git-ignored, never a project
 * dependency), running a Q4_0 GGUF exported from the `--hf` checkpoint (gguf-export.ts; cached beside it and
 * re-exported when the checkpoint changes). The ONNX model in `--model` must be built from the same checkpoint.
 * One process alternates `--alternations` times (the order flipped every other time, the two never running at
 * once), each side measuring with `--threads` threads:
 *   decode 1     greedy decode of --tokens tokens after a --prompt-token prompt (llama-bench -n 64's tg)
 *   decode N     --streams prompts decoded together (llama.cpp: one context of N sequences, batched as
 *                llama-server -np N -cb does; ours: the Engine's continuous batching)
 *   prefill      a --prefill-token prompt to its first token (llama-bench -p 128's pp)
 * Prints each alternation's figures, the medians, and ours/llama.cpp as the median of the paired ratios, for
 * the wall-clock figures and for each side's internal accounting (reference-runs.ts says which is which),
 * plus llama.cpp's CPU feature line. --json prints one JSON object last. --check instead validates the export
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
import { NODE_LLAMA_CPP_VERSION, loadedCpuBackend, loadLlamaRuntime } from "./llama-cpp";
import { checkExport } from "./llama-check";
import { type Figure, llamaDecode, llamaPrefill, oursDecode, oursPrefill } from "./reference-runs";

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
const r1 = (x: number | null) => (x === null ? null : Number(x.toFixed(1)));
const r3 = (x: number | null) => (x === null ? null : Number(x.toFixed(3)));
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

interface SideFigures {
  decode1: Figure;
  decodeN: Figure;
  prefill: Figure;
  /** Share of the machine's CPU time other processes used during this side's runs (null off Linux). */
  others: number | null;
}

async function bench(): Promise<void> {
  const threads = int("threads");
  const alternations = int("alternations");
  const tokens = int("tokens");
  const streams = int("streams");
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

  const rt = await loadLlamaRuntime(cacheDir, threads, log);
  const model = await rt.llama.loadModel({ modelPath: gguf.file, gpuLayers: 0 });
  const ctxOpts = { threads: { ideal: threads, min: threads }, performanceTracking: true, batchSize: 512 };
  const room = Math.max(promptLen + tokens, prefillLen) + 8;
  const ctx1 = await model.createContext({ ...ctxOpts, contextSize: room, sequences: 1 });
  const ctxN = await model.createContext({ ...ctxOpts, contextSize: room, sequences: streams });
  const seq1 = ctx1.getSequence();
  const seqsN = Array.from({ length: streams }, () => ctxN.getSequence());
  const runner = await loadModelRunner(modelDir, { threads, spin: values.spin !== "0" });
  const V = manifest.vocab_size;
  const one = [prompt(promptLen, 1, V)];
  const many = Array.from({ length: streams }, (_, i) => prompt(promptLen, i + 1, V));
  const long = prompt(prefillLen, 50 + prefillLen, V);

  const side = async (f: () => Promise<Omit<SideFigures, "others">>): Promise<SideFigures> => {
    const { value, others } = await withForeignLoad(f);
    return { ...value, others };
  };
  const llamaSide = () =>
    side(async () => ({
      decode1: await llamaDecode(rt, ctx1, [seq1], one, tokens),
      decodeN: await llamaDecode(rt, ctxN, seqsN, many, tokens),
      prefill: await llamaPrefill(rt, ctx1, seq1, long),
    }));
  const oursSide = () =>
    side(async () => ({
      decode1: await oursDecode(runner, one, tokens),
      decodeN: await oursDecode(runner, many, tokens),
      prefill: await oursPrefill(runner, long),
    }));

  const backend = loadedCpuBackend();
  const loadStart = loadavg().map((x) => Number(x.toFixed(2)));
  log(
    `llama.cpp ${rt.llamaCppRelease} (node-llama-cpp ${NODE_LLAMA_CPP_VERSION}), CPU backend ${backend ?? "?"}, flash attention ${ctx1.flashAttention}, ${ctx1.currentThreads} threads`,
  );
  log(`llama.cpp system info: ${rt.systemInfo}`);
  log(`model ${manifest.name}: ours ${runner.graph.reason}; llama.cpp ${path.relative(root, gguf.file)}`);
  // Warm-up, untimed: first-touch of the weights, graph allocation, thread pools.
  await llamaSide();
  await pause();
  await oursSide();

  const rows: Array<{ llama: SideFigures; ours: SideFigures }> = [];
  for (let a = 0; a < alternations; a++) {
    let llama: SideFigures;
    let ours: SideFigures;
    if (a % 2) {
      await pause();
      ours = await oursSide();
      await pause();
      llama = await llamaSide();
    } else {
      await pause();
      llama = await llamaSide();
      await pause();
      ours = await oursSide();
    }
    rows.push({ llama, ours });
    const f = (s: SideFigures) =>
      `decode 1 ${s.decode1.tps.toFixed(1)}, decode ${streams} ${s.decodeN.tps.toFixed(1)}, prefill ${prefillLen} ${s.prefill.tps.toFixed(1)} tok/s${s.others === null ? "" : ` (others ${(100 * s.others).toFixed(0)}% of the CPUs)`}`;
    log(`alternation ${a + 1}${a % 2 ? " (ours first)" : ""}: llama.cpp ${f(llama)} | ours ${f(ours)}`);
  }

  const keys = ["decode1", "decodeN", "prefill"] as const;
  const label = { decode1: "decode_1", decodeN: `decode_${streams}`, prefill: `prefill_${prefillLen}` };
  type Side = "llama" | "ours";
  const series = (side: Side, k: (typeof keys)[number], internal = false) =>
    rows.map((r) => (internal ? r[side][k].internalTps : r[side][k].tps));
  const summary = (internal: boolean) =>
    Object.fromEntries(
      keys.map((k) => {
        const l = series("llama", k, internal);
        const o = series("ours", k, internal);
        const ok = l.every((x) => x !== null) && o.every((x) => x !== null);
        return [
          label[k],
          {
            llama_cpp: l.map(r1),
            ours: o.map(r1),
            median_llama_cpp: ok ? r1(median(l as number[])) : null,
            median_ours: ok ? r1(median(o as number[])) : null,
            ours_over_llama_cpp: ok ? r3(median(o.map((x, i) => (x as number) / (l[i] as number)))) : null,
          },
        ];
      }),
    );
  const wall = summary(false);
  const internal = summary(true);
  const pct = (x: number | null) => (x === null ? null : Math.round(100 * x));
  const others = {
    llama_cpp_pct: rows.map((r) => pct(r.llama.others)),
    ours_pct: rows.map((r) => pct(r.ours.others)),
  };
  const load = { start: loadStart, end: loadavg().map((x) => Number(x.toFixed(2))) };
  for (const [title, s] of [
    ["wall clock", wall],
    ["internal (llama_perf / engine step time)", internal],
  ] as const) {
    log(`\n${title}: median tok/s, ours/llama.cpp = median of the ${alternations} paired ratios`);
    for (const [k, v] of Object.entries(s)) {
      if (v.median_llama_cpp === null) {
        log(`  ${k.padEnd(12)} llama.cpp has no internal figure for several sequences`);
        continue;
      }
      log(
        `  ${k.padEnd(12)} llama.cpp ${String(v.median_llama_cpp).padStart(7)}  ours ${String(v.median_ours).padStart(7)}  ours/llama.cpp ${v.ours_over_llama_cpp}`,
      );
    }
  }
  log(
    `\nload average ${load.start.join(" ")} at the start, ${load.end.join(" ")} at the end; other processes' share of the CPUs per alternation: during llama.cpp ${others.llama_cpp_pct.join(", ")} %, during ours ${others.ours_pct.join(", ")} %`,
  );
  await runner.release();
  await ctx1.dispose();
  await ctxN.dispose();
  await model.dispose();
  await rt.llama.dispose();
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
          release: rt.llamaCppRelease,
          node_llama_cpp: NODE_LLAMA_CPP_VERSION,
          cpu_backend: backend,
          system_info: rt.systemInfo,
          flash_attention: ctx1.flashAttention,
          gguf: path.relative(root, gguf.file),
        },
        ours_graph: runner.graph.reason,
        wall,
        internal,
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
