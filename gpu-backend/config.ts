/** Command-line configuration of the backend (`npm run backend -- ...`). */
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { DEFAULT_ENGINE_OPTIONS, type EngineOptions } from "./engine/engine";
import { type GraphChoice, parseGraphChoice } from "./engine/graph-choice";

export interface BackendConfig {
  models: string[];
  port: number;
  host: string;
  threads: number;
  ep: "cpu" | "webgpu" | "cuda";
  runtime: "native" | "wasm";
  /** MoE graph form (engine/graph-choice.ts). */
  graph: GraphChoice;
  token: string | undefined;
  graceMs: number;
  warmupDelayMs: number;
  engine: EngineOptions;
}

export const USAGE =
  "usage: npm run backend -- --model <dir> [--model <dir> ...] --port <n> [--host 127.0.0.1] [--threads N] [--ep cpu|webgpu|cuda] " +
  "[--runtime native|wasm] [--graph auto|fused|sliced] [--token T | env BACKEND_TOKEN] [--max-batch N] [--kv-budget-mb N] [--prefix-cache-mb N] " +
  "[--block-size 16] [--prefill-chunk 256] [--max-queue 64] [--grace-ms 10000]";

function int(name: string, v: string | undefined, def: number, min: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got "${v}"`);
  return n;
}

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv): BackendConfig {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      model: { type: "string", multiple: true },
      port: { type: "string" },
      host: { type: "string" },
      threads: { type: "string" },
      ep: { type: "string" },
      runtime: { type: "string" },
      graph: { type: "string" },
      token: { type: "string" },
      "max-batch": { type: "string" },
      "kv-budget-mb": { type: "string" },
      "prefix-cache-mb": { type: "string" },
      "block-size": { type: "string" },
      "prefill-chunk": { type: "string" },
      "max-queue": { type: "string" },
      "grace-ms": { type: "string" },
      "warmup-delay-ms": { type: "string" },
    },
  });
  if (!values.model?.length) throw new Error("--model is required");
  if (values.port === undefined) throw new Error("--port is required (0 picks a free one)");
  const ep = values.ep ?? "cpu";
  if (ep !== "cpu" && ep !== "webgpu" && ep !== "cuda") throw new Error(`--ep must be cpu, webgpu or cuda, got "${ep}"`);
  const runtime = values.runtime ?? "native";
  if (runtime !== "native" && runtime !== "wasm") throw new Error(`--runtime must be native or wasm, got "${runtime}"`);
  const d = DEFAULT_ENGINE_OPTIONS;
  const token = values.token ?? env.BACKEND_TOKEN;
  return {
    models: values.model,
    port: int("port", values.port, 0, 0),
    host: values.host ?? "127.0.0.1",
    threads: int("threads", values.threads, Math.max(1, cpus().length), 1),
    ep,
    runtime,
    graph: parseGraphChoice(values.graph),
    token: token === "" ? undefined : token,
    graceMs: int("grace-ms", values["grace-ms"], 10_000, 0),
    warmupDelayMs: int("warmup-delay-ms", values["warmup-delay-ms"], 0, 0),
    engine: {
      maxBatch: int("max-batch", values["max-batch"], d.maxBatch, 1),
      kvBudgetBytes: int("kv-budget-mb", values["kv-budget-mb"], d.kvBudgetBytes / 2 ** 20, 1) * 2 ** 20,
      prefixCacheBytes: int("prefix-cache-mb", values["prefix-cache-mb"], d.prefixCacheBytes / 2 ** 20, 0) * 2 ** 20,
      blockSize: int("block-size", values["block-size"], d.blockSize, 1),
      prefillChunk: int("prefill-chunk", values["prefill-chunk"], d.prefillChunk, 1),
      maxQueue: int("max-queue", values["max-queue"], d.maxQueue, 1),
    },
  };
}
