/**
 * `npm run bench:llama -- --check [--hf models/hf/small]`: does llama.cpp compute, from the exported GGUF,
 * the model the checkpoint defines? Compares llama.cpp's next-token distribution after a few prompts with
 * the fp32 reference forward (scripts/reference/forward.ts), in two runs:
 *  - F16 matrices with q_proj/k_proj scaled by SHARPEN on both sides: the dev presets' random weights
 *    leave attention almost uniform, so a wrong Q/K permutation would hardly show; sharpened, it does
 *    (every top-1 differs), and F16 keeps rounding noise out, so the log-probabilities must correlate ~1;
 *  - the Q4_0 file the bench runs, as is: Q4_0 rounding flips near-ties, so top-1 agrees on most prompts.
 * Fails (exit 1) when the F16 run is off.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { openCheckpoint } from "../model-builder/safetensors";
import { referenceForward } from "../reference/forward";
import { exportGguf } from "./gguf-export";
import { type NlcModel, loadLlamaRuntime } from "./llama-cpp";

const SHARPEN = 10;
const PROMPTS = 8;
const PROMPT_LEN = 8;

export interface CheckRun {
  gguf: string;
  top1Agree: number;
  prompts: number;
  /** Pearson correlation of llama.cpp's log-probabilities with the reference logits, per prompt. */
  correlation: number[];
}

export interface CheckResult {
  checkpoint: string;
  f16Sharpened: CheckRun;
  q4_0: CheckRun;
}

function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < n; i++) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) ** 2;
    bb += (b[i] - mb) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

const argmax = (v: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
};

export async function checkExport(
  hfDir: string,
  cacheDir: string,
  threads: number,
  log: (s: string) => void,
): Promise<CheckResult> {
  const rt = await loadLlamaRuntime(cacheDir, threads, log);
  const ckpt = await openCheckpoint(hfDir);
  const name = path.basename(hfDir);
  const V = ckpt.config.vocab_size;
  const prompts = Array.from({ length: PROMPTS }, (_, s) => [
    1,
    ...Array.from({ length: PROMPT_LEN - 1 }, (_, i) => (((i + 1) * 7919 + s * 104729) % (V - 600)) + 500),
  ]);
  const sharpen = (n: string, w: Float32Array) => (/\.(q|k)_proj\.weight$/.test(n) ? w.map((v) => v * SHARPEN) : w);

  const run = async (
    gguf: string,
    transform: ((n: string, w: Float32Array) => Float32Array) | undefined,
  ): Promise<CheckRun> => {
    const model: NlcModel = await rt.llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
    const ctx = await model.createContext({ contextSize: 64, threads: { ideal: threads, min: threads } });
    const seq = ctx.getSequence();
    let agree = 0;
    const correlation: number[] = [];
    for (const p of prompts) {
      await seq.clearHistory();
      const res = await seq.controlledEvaluate(
        p.map((t, i) => (i === p.length - 1 ? [t, { generateNext: { probabilities: true } }] : t)),
      );
      const probs = res[p.length - 1]?.next?.probabilities;
      if (!probs) throw new Error("llama.cpp returned no probabilities");
      const logp = Float64Array.from({ length: V }, (_, i) => Math.log(probs.get(i) ?? 1e-30));
      const ref = await referenceForward(
        ckpt.config,
        async (n) => {
          const w = await ckpt.readF32(n);
          return transform ? transform(n, w) : w;
        },
        p,
      );
      const row = ref.logits.subarray((p.length - 1) * V, p.length * V);
      if (argmax(logp) === argmax(row)) agree++;
      correlation.push(Number(pearson(logp, row).toFixed(4)));
    }
    await ctx.dispose();
    await model.dispose();
    return { gguf: path.basename(gguf), top1Agree: agree, prompts: prompts.length, correlation };
  };

  // The check's files are big (F16) and cheap to redo: a temporary folder, removed after.
  const dir = await mkdtemp(path.join(tmpdir(), "llama-check-"));
  try {
    const f16 = path.join(dir, `${name}.F16-sharpened.gguf`);
    await exportGguf(hfDir, f16, { matrixType: "f16", transform: sharpen });
    const sharp = await run(f16, sharpen);
    const q4 = path.join(dir, `${name}.Q4_0.gguf`);
    await exportGguf(hfDir, q4);
    const plain = await run(q4, undefined);
    const show = (what: string, r: CheckRun) =>
      log(
        `${what}: top-1 agrees on ${r.top1Agree}/${r.prompts} prompts; correlation of log-probabilities with the reference logits ${Math.min(...r.correlation).toFixed(4)}..${Math.max(...r.correlation).toFixed(4)}`,
      );
    log(`checkpoint ${hfDir}, llama.cpp ${rt.llamaCppRelease}, ${PROMPTS} prompts of ${PROMPT_LEN} tokens`);
    show(`F16, q/k x${SHARPEN}`, sharp);
    show("Q4_0 (benchmarked)", plain);
    if (sharp.top1Agree < sharp.prompts - 1 || Math.min(...sharp.correlation) < 0.99) {
      throw new Error("llama.cpp does not compute the checkpoint's model from the F16 export: the export is wrong");
    }
    return { checkpoint: hfDir, f16Sharpened: sharp, q4_0: plain };
  } finally {
    await rm(dir, { recursive: true, force: true });
    await ckpt.close();
    await rt.llama.dispose();
  }
}
