/**
 * `npm run logits`: what the model predicts after a prompt, with the backend's own model runner (and the
 * server's graph choice), so what it prints is what the server computes.
 *   default   the top-k next tokens at the last position (every position with --all): id, piece, logit, p
 *   --json    the same as one JSON object
 *   --raw     {"logits": [[V floats], ...]}: the full rows (graph-correctness.test.ts reads this)
 */
import { existsSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import path from "node:path";
import { type GraphChoice, parseGraphChoice } from "../gpu-backend/engine/graph-choice";
import { loadModelRunner } from "../gpu-backend/engine/model-runner";
import { encode } from "../worker/tokenizer/index.js";
import { BOS_ID, VOCAB_SIZE } from "../worker/tokenizer/vocab-layout.js";
import { getVocab } from "../worker/tokenizer/vocab.js";
import { parseCli, UsageError } from "./lib/cli";

const USAGE = `usage: npm run logits -- --model <model_dir> (--ids 1,415,2936 | --text "The quick brown") [options]

Prints the model's top-k next tokens after the prompt, with their text.
  --ids LIST       prompt token ids, comma-separated
  --text TEXT      prompt text, tokenized with BOS (as the worker does for a raw prompt)
  --top-k N        tokens per position (default 10)
  --all            every position, not only the last
  --json           one JSON object: {"positions": [{"position", "id", "top": [{"id", "piece", "logit", "p"}]}]}
  --raw            {"logits": [[V floats], ...]}: the full rows (with --all, one per position)
  --threads N      ONNX Runtime threads (default: all cores)
  --graph auto|fused|sliced   MoE graph form (default: the server's choice)`;

interface LogitsArgs {
  model: string;
  ids: number[];
  all: boolean;
  topK: number;
  output: "table" | "json" | "raw";
  threads?: number;
  graph: GraphChoice;
}

function positiveInt(flag: string, v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1) throw new UsageError(`${flag} must be a positive integer, got "${v}"`);
  return n;
}

export function parseLogitsArgs(argv: string[]): LogitsArgs {
  const { values } = parseCli("logits", argv, {
    usage: USAGE,
    options: {
      model: { type: "string" },
      ids: { type: "string" },
      text: { type: "string" },
      "top-k": { type: "string" },
      all: { type: "boolean" },
      json: { type: "boolean" },
      raw: { type: "boolean" },
      threads: { type: "string" },
      graph: { type: "string" },
    },
  });
  if (!values.model) throw new UsageError("--model is required (see --help)");
  if ((values.ids === undefined) === (values.text === undefined))
    throw new UsageError("give exactly one of --ids and --text (see --help)");
  if (values.json && values.raw) throw new UsageError("--json and --raw exclude each other");
  let ids: number[];
  if (values.ids !== undefined) {
    const parts = values.ids.split(",").map((p) => p.trim());
    if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p))) {
      throw new UsageError(`--ids must be a comma-separated list of non-negative integers, got "${values.ids}"`);
    }
    ids = parts.map(Number);
    if (ids.some((i) => !Number.isSafeInteger(i))) throw new UsageError(`--ids contains an id that is too large`);
  } else {
    ids = [BOS_ID, ...encode(values.text!)];
  }
  let graph: GraphChoice;
  try {
    graph = parseGraphChoice(values.graph);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return {
    model: values.model,
    ids,
    all: values.all ?? false,
    topK: values["top-k"] === undefined ? 10 : positiveInt("--top-k", values["top-k"]),
    output: values.raw ? "raw" : values.json ? "json" : "table",
    threads: values.threads === undefined ? undefined : positiveInt("--threads", values.threads),
    graph,
  };
}

/** The piece of a Mistral v1 id ("▁Paris", "<0x0A>", "</s>"); ids past that vocabulary (synthetic models) as <id>. */
function piece(id: number): string {
  return id < VOCAB_SIZE ? getVocab().pieces[id]! : `<${id}>`;
}

interface Top {
  id: number;
  piece: string;
  logit: number;
  p: number;
}

/** The k largest entries of a row with their softmax probability (over the whole row). */
function topK(row: Float32Array, k: number): Top[] {
  let max = -Infinity;
  for (const x of row) if (x > max) max = x;
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  const best: number[] = [];
  for (let i = 0; i < row.length; i++) {
    if (best.length < k || row[i]! > row[best.at(-1)!]!) {
      best.push(i);
      best.sort((a, b) => row[b]! - row[a]! || a - b);
      if (best.length > k) best.pop();
    }
  }
  return best.map((id) => ({ id, piece: piece(id), logit: row[id]!, p: Math.exp(row[id]! - max) / sum }));
}

async function main(): Promise<void> {
  const args = parseLogitsArgs(process.argv.slice(2));
  const dir = path.resolve(args.model);
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new UsageError(`model directory ${args.model} does not exist`);
  if (!existsSync(path.join(dir, "model.json"))) {
    throw new UsageError(`${args.model} has no model.json (build one with npm run build-model)`);
  }
  const runner = await loadModelRunner(dir, { threads: args.threads ?? availableParallelism(), graph: args.graph });
  try {
    const V = runner.manifest.vocab_size;
    const bad = args.ids.find((i) => i >= V);
    if (bad !== undefined) throw new UsageError(`token id ${bad} is out of range for vocab size ${V}`);
    const { logits } = await runner.forwardAll(args.ids);
    const S = args.ids.length;
    const positions = Array.from({ length: args.all ? S : 1 }, (_, i) => (args.all ? i : S - 1));
    const row = (s: number) => logits.subarray(s * V, (s + 1) * V);
    if (args.output === "raw") {
      process.stdout.write(JSON.stringify({ logits: positions.map((s) => Array.from(row(s))) }) + "\n");
      return;
    }
    const tops = positions.map((s) => ({ position: s, id: args.ids[s]!, top: topK(row(s), Math.min(args.topK, V)) }));
    if (args.output === "json") {
      process.stdout.write(JSON.stringify({ positions: tops }) + "\n");
      return;
    }
    for (const t of tops) {
      console.log(`after position ${t.position} (id ${t.id} ${JSON.stringify(piece(t.id))}):`);
      for (const [i, x] of t.top.entries()) {
        console.log(
          `  ${String(i + 1).padStart(3)}. ${String(x.id).padStart(6)}  ${JSON.stringify(x.piece).padEnd(18)} logit ${x.logit.toFixed(4).padStart(9)}  p ${x.p.toFixed(4)}`,
        );
      }
    }
  } finally {
    await runner.release();
  }
}

const invokedDirectly =
  process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname);
if (invokedDirectly) {
  main().catch((e: unknown) => {
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`error: ${msg.split("\n")[0]}\n`);
    process.exit(e instanceof UsageError ? 2 : 1);
  });
}
