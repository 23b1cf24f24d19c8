/** Command-line configuration of the backend (`npm run backend -- ...`). */
import { isIP } from "node:net";
import { cpus } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { DEFAULT_HEARTBEAT_MS, MIN_REGISTRY_TOKEN_LENGTH } from "../contract/registry";
import { MAX_USAGE_BATCH } from "../contract/usage";
import { DEFAULT_ENGINE_OPTIONS, type EngineOptions } from "./engine/engine";
import { type GraphChoice, type InvariantChoice, parseGraphChoice, parseInvariantChoice } from "./engine/graph-choice";

export interface BackendConfig {
  models: string[];
  port: number;
  host: string;
  threads: number;
  ep: "cpu" | "webgpu" | "cuda";
  runtime: "native" | "wasm";
  /** MoE graph form (engine/graph-choice.ts). */
  graph: GraphChoice;
  /** The row-padded graph whose logits do not depend on batch-mates (engine/graph-choice.ts). */
  batchInvariant: InvariantChoice;
  token: string | undefined;
  /** GET /metrics bearer token (--metrics-token or env METRICS_TOKEN); undefined = /metrics is open. */
  metricsToken: string | undefined;
  /** --insecure: run without a token on a non-loopback address (main prints a loud warning). */
  insecure: boolean;
  /** Request bodies above this many bytes get 413 before they are read. */
  maxBodyBytes: number;
  usage: UsageConfig;
  graceMs: number;
  warmupDelayMs: number;
  /** --register: join a worker's replica registry (server/registration.ts); undefined = static TIERS only. */
  registry: RegistryConfig | undefined;
  /** Build version reported to the registry: env BUILD_VERSION, else package.json's version. */
  version: string;
  engine: EngineOptions;
}

/** The usage witness (gpu-backend/usage/): the journal, and where its records are delivered. */
export interface UsageConfig {
  /** Journal directory; undefined = the default, see journalDir(). */
  journalDir: string | undefined;
  segmentBytes: number;
  /** Without a URL, keep only this many segments (the journal would otherwise only grow). */
  keepSegments: number;
  /** Worker endpoint for POST {records}; unset = journal only, no delivery. */
  url: string | undefined;
  token: string | undefined;
  batch: number;
  /** Finished requests that POST /v1/usage/status remembers. */
  recent: number;
  retryBaseMs: number;
  retryMaxMs: number;
}

/** The replica registry (contract/registry.ts). */
export interface RegistryConfig {
  /** The worker's base URL (--register). */
  workerUrl: string;
  /** The URL the worker reaches this replica at (--advertise-url; default http://HOST:PORT with the bound port). */
  advertiseUrl: string | undefined;
  /** env REGISTRY_TOKEN only (never argv: visible in ps). */
  token: string;
  heartbeatMs: number;
  /**
   * After SIGTERM: announce "draining", then keep serving for this long before refusing new work, so every
   * worker isolate's replica snapshot (refreshed every 2 s) has seen it and routes elsewhere first.
   */
  announceMs: number;
}

export const USAGE =
  "usage: npm run backend -- --model <dir> [--model <dir> ...] --port <n> [--host 127.0.0.1] [--threads N] [--ep cpu|webgpu|cuda] " +
  "[--runtime native|wasm] [--graph auto|fused|sliced] [--batch-invariant auto|on|off] [--token T | env BACKEND_TOKEN] [--metrics-token T | env METRICS_TOKEN] [--max-batch N] [--kv-budget-mb N] [--prefix-cache-mb N] " +
  "[--block-size 16] [--prefill-chunk 256] [--max-queue 64] [--batch-slots N] [--grace-ms 10000] [--insecure] [--max-body-mb 8] " +
  "[--journal-dir DIR] [--journal-segment-mb 16] [--journal-keep-segments 8] [--usage-url URL] [--usage-token T | env USAGE_TOKEN] [--usage-batch 100] [--usage-recent 100000] " +
  "[--usage-retry-base-ms 500] [--usage-retry-max-ms 60000] " +
  "[--register WORKER_URL (env REGISTRY_TOKEN)] [--advertise-url URL] [--heartbeat-ms 2000] [--drain-announce-ms 3000]";

/** --journal-dir, or `.dev/journal/<port>` with the port actually bound (so --port 0 works too). */
export function journalDir(cfg: BackendConfig, boundPort: number): string {
  return cfg.usage.journalDir ?? path.resolve(".dev/journal", String(boundPort));
}

/** Loopback addresses only: a tokenless backend must not be reachable from another host. */
export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  const h = host.replace(/^\[|\]$/g, "");
  if (isIP(h) === 4) return h.startsWith("127.");
  if (isIP(h) === 6) return h === "::1" || /^::ffff:127\./i.test(h);
  return false;
}

const nonEmpty = (v: string | undefined) => (v === undefined || v === "" ? undefined : v);

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
      "batch-invariant": { type: "string" },
      token: { type: "string" },
      "metrics-token": { type: "string" },
      "max-batch": { type: "string" },
      "kv-budget-mb": { type: "string" },
      "prefix-cache-mb": { type: "string" },
      "block-size": { type: "string" },
      "prefill-chunk": { type: "string" },
      "max-queue": { type: "string" },
      "batch-slots": { type: "string" },
      "grace-ms": { type: "string" },
      "warmup-delay-ms": { type: "string" },
      insecure: { type: "boolean" },
      "max-body-mb": { type: "string" },
      "journal-dir": { type: "string" },
      "journal-segment-mb": { type: "string" },
      "journal-keep-segments": { type: "string" },
      "usage-url": { type: "string" },
      "usage-token": { type: "string" },
      "usage-batch": { type: "string" },
      "usage-recent": { type: "string" },
      "usage-retry-base-ms": { type: "string" },
      "usage-retry-max-ms": { type: "string" },
      register: { type: "string" },
      "advertise-url": { type: "string" },
      "heartbeat-ms": { type: "string" },
      "drain-announce-ms": { type: "string" },
    },
  });
  if (!values.model?.length) throw new Error("--model is required");
  if (values.port === undefined) throw new Error("--port is required (0 picks a free one)");
  const ep = values.ep ?? "cpu";
  if (ep !== "cpu" && ep !== "webgpu" && ep !== "cuda")
    throw new Error(`--ep must be cpu, webgpu or cuda, got "${ep}"`);
  const runtime = values.runtime ?? "native";
  if (runtime !== "native" && runtime !== "wasm") throw new Error(`--runtime must be native or wasm, got "${runtime}"`);
  const d = DEFAULT_ENGINE_OPTIONS;
  const token = nonEmpty(values.token ?? env.BACKEND_TOKEN);
  const host = values.host ?? "127.0.0.1";
  const insecure = values.insecure ?? false;
  if (token === undefined && !insecure && !isLoopback(host)) {
    throw new Error(
      `refusing to serve ${host} without a token: set BACKEND_TOKEN (or --token), bind a loopback address, or pass --insecure`,
    );
  }
  const registry = parseRegistry(values, env);
  if (registry && !registry.advertiseUrl && /^(0\.0\.0\.0|::|\[::\])$/.test(host))
    throw new Error(
      `--register with --host ${host} needs --advertise-url (the URL the worker reaches this replica at)`,
    );
  const usageUrl = nonEmpty(values["usage-url"]);
  const usageToken = nonEmpty(values["usage-token"] ?? env.USAGE_TOKEN);
  if (usageUrl !== undefined) {
    let u: URL;
    try {
      u = new URL(usageUrl);
    } catch {
      throw new Error(`--usage-url is not a URL: "${usageUrl}"`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:")
      throw new Error(`--usage-url must be http(s), got "${usageUrl}"`);
    if (usageToken === undefined)
      throw new Error("--usage-url needs --usage-token or env USAGE_TOKEN (the endpoint is never public)");
  }
  const batch = int("usage-batch", values["usage-batch"], 100, 1);
  if (batch > MAX_USAGE_BATCH) throw new Error(`--usage-batch must be <= ${MAX_USAGE_BATCH}, got ${batch}`);
  const retryBaseMs = int("usage-retry-base-ms", values["usage-retry-base-ms"], 500, 1);
  return {
    models: values.model,
    port: int("port", values.port, 0, 0),
    host,
    threads: int("threads", values.threads, Math.max(1, cpus().length), 1),
    ep,
    runtime,
    graph: parseGraphChoice(values.graph),
    batchInvariant: parseInvariantChoice(values["batch-invariant"]),
    token,
    metricsToken: nonEmpty(values["metrics-token"] ?? env.METRICS_TOKEN),
    insecure,
    maxBodyBytes: int("max-body-mb", values["max-body-mb"], 8, 1) * 2 ** 20,
    usage: {
      journalDir: values["journal-dir"] === undefined ? undefined : path.resolve(values["journal-dir"]),
      segmentBytes: int("journal-segment-mb", values["journal-segment-mb"], 16, 1) * 2 ** 20,
      keepSegments: int("journal-keep-segments", values["journal-keep-segments"], 8, 1),
      url: usageUrl,
      token: usageToken,
      batch,
      recent: int("usage-recent", values["usage-recent"], 100_000, 1),
      retryBaseMs,
      retryMaxMs: int("usage-retry-max-ms", values["usage-retry-max-ms"], 60_000, retryBaseMs),
    },
    graceMs: int("grace-ms", values["grace-ms"], 10_000, 0),
    registry,
    version: nonEmpty(env.BUILD_VERSION) ?? packageVersion(),
    warmupDelayMs: int("warmup-delay-ms", values["warmup-delay-ms"], 0, 0),
    engine: {
      maxBatch: int("max-batch", values["max-batch"], d.maxBatch, 1),
      kvBudgetBytes: int("kv-budget-mb", values["kv-budget-mb"], d.kvBudgetBytes / 2 ** 20, 1) * 2 ** 20,
      prefixCacheBytes: int("prefix-cache-mb", values["prefix-cache-mb"], d.prefixCacheBytes / 2 ** 20, 0) * 2 ** 20,
      blockSize: int("block-size", values["block-size"], d.blockSize, 1),
      prefillChunk: int("prefill-chunk", values["prefill-chunk"], d.prefillChunk, 1),
      maxQueue: int("max-queue", values["max-queue"], d.maxQueue, 1),
      ...(values["batch-slots"] !== undefined ? { batchSlots: int("batch-slots", values["batch-slots"], 1, 1) } : {}),
    },
  };
}

function httpUrl(flag: string, v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new Error(`--${flag} is not a URL: "${v}"`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(`--${flag} must be http(s), got "${v}"`);
  return v.replace(/\/+$/, "");
}

/** Shortest REGISTRY_TOKEN the worker accepts (contract/registry.ts): refuse at start, not at the first heartbeat. */
function parseRegistry(
  values: Record<string, string | boolean | string[] | undefined>,
  env: NodeJS.ProcessEnv,
): RegistryConfig | undefined {
  const workerUrl = nonEmpty(values.register as string | undefined);
  const advertise = nonEmpty(values["advertise-url"] as string | undefined);
  if (workerUrl === undefined) {
    if (advertise !== undefined) throw new Error("--advertise-url needs --register");
    return undefined;
  }
  const token = nonEmpty(env.REGISTRY_TOKEN);
  if (token === undefined || token.length < MIN_REGISTRY_TOKEN_LENGTH)
    throw new Error(`--register needs env REGISTRY_TOKEN of ${MIN_REGISTRY_TOKEN_LENGTH}+ characters`);
  const heartbeatMs = int("heartbeat-ms", values["heartbeat-ms"] as string | undefined, DEFAULT_HEARTBEAT_MS, 100);
  return {
    workerUrl: httpUrl("register", workerUrl),
    advertiseUrl: advertise === undefined ? undefined : httpUrl("advertise-url", advertise),
    token,
    heartbeatMs,
    announceMs: int("drain-announce-ms", values["drain-announce-ms"] as string | undefined, 3_000, 0),
  };
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(path.resolve(import.meta.dirname, "../package.json"), "utf8")) as {
      version?: unknown;
    };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}
