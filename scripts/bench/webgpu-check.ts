/**
 * Device check: does `--ep webgpu` run the int4 MoE graph, and does it agree with the CPU EP?
 * Writes a seeded synthetic Mixtral checkpoint, builds it (accuracy level 0), runs forwardAll on one
 * prompt with the CPU EP and the WebGPU EP, prints max|err|/max|logit| per position, argmax agreement
 * and forwardAll timings. ORT's verbose log (node placement) goes to stderr: redirect it to a file.
 *
 *   WGC_THREADS=2 npx tsx scripts/bench/webgpu-check.ts [workDir] 2>ort-verbose.log
 * On a GPU host without Node/node_modules (how it ran on an H100): carry, in an ignored folder D,
 *   esbuild scripts/bench/webgpu-check.ts --bundle --platform=node --format=esm --target=node20 \
 *     --external:onnxruntime-node --external:onnxruntime-web --outfile=D/webgpu-check.mjs \
 *     --banner:js='import { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);'
 *   D/node_modules/onnxruntime-{node,common} (package.json + dist JS; the two binaries of
 *   bin/napi-v6/linux/x64 xz-compressed), node itself xz-compressed (~36 MB in all).
 *   Dawn's Vulkan backend needs libvulkan1 AND the glvnd libs (libglvnd0 libgl1 libglx0 libegl1 libgles2
 *   libopengl0): with libvulkan1 alone the NVIDIA ICD (libGLX_nvidia.so.0) fails, "No supported adapters".
 *   Placement: grep VerifyEachNodeIsAssignedToAnEp in the stderr log.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { loadModelRunner, type ModelRunner } from "../../gpu-backend/engine/model-runner";
import { buildModel } from "../model-builder/build";
import { type SyntheticConfig, writeSyntheticCheckpoint } from "../reference/synthetic";

const CFG: SyntheticConfig = {
  architecture: "MixtralForCausalLM",
  hidden: 256,
  intermediate: 512,
  layers: 2,
  heads: 8,
  kvHeads: 2,
  experts: 8,
  topK: 2,
  vocab: 32000,
  slidingWindow: null,
};
const PROMPT = [
  1, 415, 2936, 9060, 285, 1142, 10575, 754, 272, 17898, 3914, 28723, 13, 1014, 5565, 349, 5344, 304, 6625, 28723,
];
const TIMED_RUNS = 5;
/** Intra-op threads for both EPs (ops the WebGPU EP does not take run on CPU threads too). */
const THREADS = Number(process.env.WGC_THREADS ?? 2);

function log(msg: string): void {
  console.log(msg);
  // Marks phases in the verbose ORT log (stderr) too.
  console.error(`### ${msg}`);
}

async function timeRuns(runner: ModelRunner, n: number): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await runner.forwardAll(PROMPT);
    ms.push(performance.now() - t0);
  }
  return ms;
}

/** A bare session at verbose severity: ORT logs each node's EP ("Node(s) placed on [...]") at session creation. */
async function logPlacement(modelDir: string, ep: "cpu" | "webgpu"): Promise<void> {
  log(`--- ${ep}: placement probe session (verbose)`);
  try {
    const s = await ort.InferenceSession.create(path.join(modelDir, "model.onnx"), {
      executionProviders: [ep],
      graphOptimizationLevel: "all",
      intraOpNumThreads: THREADS,
      logSeverityLevel: 0,
      logVerbosityLevel: 0,
    });
    await s.release();
  } catch (e) {
    log(`${ep}: placement probe FAILED: ${(e as Error).message.split("\n")[0]}`);
  }
  log(`--- ${ep}: placement probe done`);
}

async function runEp(
  modelDir: string,
  ep: "cpu" | "webgpu",
): Promise<{ logits: Float32Array; ms: number[]; loadMs: number } | null> {
  log(`--- ${ep}: creating session`);
  const t0 = performance.now();
  let runner: ModelRunner;
  try {
    runner = await loadModelRunner(modelDir, { ep, threads: THREADS });
  } catch (e) {
    log(`${ep}: session creation FAILED: ${(e as Error).message}`);
    return null;
  }
  const loadMs = performance.now() - t0;
  log(`${ep}: session created in ${loadMs.toFixed(0)} ms`);
  try {
    const t1 = performance.now();
    const first = await runner.forwardAll(PROMPT);
    log(`${ep}: first forwardAll ${(performance.now() - t1).toFixed(1)} ms`);
    const ms = await timeRuns(runner, TIMED_RUNS);
    log(`${ep}: forwardAll(${PROMPT.length} tokens) ms: ${ms.map((x) => x.toFixed(1)).join(" ")}`);
    return { logits: Float32Array.from(first.logits), ms, loadMs };
  } catch (e) {
    log(`${ep}: forwardAll FAILED: ${(e as Error).message}`);
    return null;
  } finally {
    await runner.release();
  }
}

function compare(a: Float32Array, b: Float32Array, S: number, V: number): void {
  let worst = 0;
  let argmaxSame = 0;
  for (let s = 0; s < S; s++) {
    let maxErr = 0;
    let maxRef = 0;
    let ia = 0;
    let ib = 0;
    for (let v = 0; v < V; v++) {
      const x = a[s * V + v]!;
      const y = b[s * V + v]!;
      maxErr = Math.max(maxErr, Math.abs(x - y));
      maxRef = Math.max(maxRef, Math.abs(x));
      if (x > a[s * V + ia]!) ia = v;
      if (y > b[s * V + ib]!) ib = v;
    }
    const rel = maxErr / maxRef;
    worst = Math.max(worst, rel);
    if (ia === ib) argmaxSame++;
    log(
      `pos ${String(s).padStart(2)}: max|err|/max|logit| = ${rel.toExponential(2)} (max|err| ${maxErr.toExponential(2)}, argmax cpu ${ia} webgpu ${ib})`,
    );
  }
  log(`worst max|err|/max|logit| = ${worst.toExponential(2)}; argmax agrees at ${argmaxSame}/${S} positions`);
}

async function main(): Promise<void> {
  // Node placement ("Node(s) placed on [...]") is logged at verbose; the env level is read once at first session.
  ort.env.logLevel = "verbose";
  const work = process.argv[2] ?? mkdtempSync(path.join(tmpdir(), "webgpu-check-"));
  const ckpt = path.join(work, "ckpt");
  const model = path.join(work, "model");
  const t0 = performance.now();
  await writeSyntheticCheckpoint(ckpt, CFG, { seed: 7 });
  await buildModel({ inDir: ckpt, outDir: model, accuracyLevel: 0, quiet: true, threads: 0 });
  log(`built ${JSON.stringify(CFG)} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const cpu = await runEp(model, "cpu");
  const gpu = await runEp(model, "webgpu");
  await logPlacement(model, "cpu");
  await logPlacement(model, "webgpu");
  if (cpu && gpu) compare(cpu.logits, gpu.logits, PROMPT.length, CFG.vocab);
  if (process.argv[2] === undefined) rmSync(work, { recursive: true, force: true });
}

await main();
