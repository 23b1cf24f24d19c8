/**
 * npm run logits -- --model <model_dir> --ids 1,415,2936 [--all] [--threads N (default: all cores)] [--graph auto|fused|sliced]
 * Prints {"logits": [[...V floats...], ...]}: the last position only, or every position with --all.
 * Runs the backend's own model runner so what it prints is what the server computes.
 */
import { existsSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { type GraphChoice, parseGraphChoice } from "../gpu-backend/engine/graph-choice";
import { loadModelRunner } from "../gpu-backend/engine/model-runner";

interface LogitsArgs {
  model: string;
  ids: number[];
  all: boolean;
  threads?: number;
  graph: GraphChoice;
}

class UsageError extends Error {}

const USAGE = "usage: npm run logits -- --model <model_dir> --ids 1,415,2936 [--all] [--threads N] [--graph auto|fused|sliced]";

export function parseLogitsArgs(argv: string[]): LogitsArgs {
  let values: { model?: string; ids?: string; all?: boolean; threads?: string; graph?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { model: { type: "string" }, ids: { type: "string" }, all: { type: "boolean" }, threads: { type: "string" }, graph: { type: "string" } },
      strict: true,
    }));
  } catch (e) {
    throw new UsageError(`${(e as Error).message}; ${USAGE}`);
  }
  if (!values.model) throw new UsageError(`--model is required; ${USAGE}`);
  if (values.ids === undefined) throw new UsageError(`--ids is required; ${USAGE}`);
  const parts = values.ids.split(",").map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p))) {
    throw new UsageError(`--ids must be a comma-separated list of non-negative integers, got "${values.ids}"`);
  }
  const ids = parts.map(Number);
  if (ids.some((i) => !Number.isSafeInteger(i))) throw new UsageError(`--ids contains an id that is too large`);
  let threads: number | undefined;
  if (values.threads !== undefined) {
    threads = Number(values.threads);
    if (!Number.isInteger(threads) || threads < 1) throw new UsageError(`--threads must be a positive integer, got "${values.threads}"`);
  }
  let graph: GraphChoice;
  try {
    graph = parseGraphChoice(values.graph);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return { model: values.model, ids, all: values.all ?? false, threads, graph };
}

async function main(): Promise<void> {
  const args = parseLogitsArgs(process.argv.slice(2));
  const dir = path.resolve(args.model);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`model directory ${args.model} does not exist`);
  if (!existsSync(path.join(dir, "model.json"))) {
    throw new UsageError(`${args.model} has no model.json (build one with npm run build-model)`);
  }
  // The same graph choice as the server (graph-choice.ts), so what this prints is what it computes.
  const runner = await loadModelRunner(dir, { threads: args.threads ?? availableParallelism(), graph: args.graph });
  try {
    const V = runner.manifest.vocab_size;
    const bad = args.ids.find((i) => i >= V);
    if (bad !== undefined) throw new UsageError(`token id ${bad} is out of range for vocab size ${V}`);
    const { logits } = await runner.forwardAll(args.ids);
    const S = args.ids.length;
    const first = args.all ? 0 : S - 1;
    const rows: number[][] = [];
    for (let s = first; s < S; s++) rows.push(Array.from(logits.subarray(s * V, (s + 1) * V)));
    process.stdout.write(JSON.stringify({ logits: rows }) + "\n");
  } finally {
    await runner.release();
  }
}

const invokedDirectly = process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname);
if (invokedDirectly) {
  main().catch((e: unknown) => {
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`error: ${msg.split("\n")[0]}\n`);
    process.exit(e instanceof UsageError ? 2 : 1);
  });
}
