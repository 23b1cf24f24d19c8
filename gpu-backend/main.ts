/**
 * `npm run backend -- --model models/dev/tiny --port 8788`: the inference server.
 * Listens first (GET /health answers 503 while loading), loads and warms every model, then prints one
 * "backend ready on http://HOST:PORT models=a,b" line; with --register it then joins the worker's replica
 * registry (server/registration.ts). SIGTERM/SIGINT, the drain: announce "draining" to the registry and keep
 * serving for --drain-announce-ms (every worker isolate stops routing here), then stop admitting (503), let
 * running work finish for --grace-ms, cancel the rest, deliver the usage journal (bounded), deregister, let
 * the open responses finish writing, exit 0.
 */
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import path from "node:path";
import { serve } from "@hono/node-server";
import { Engine } from "./engine/engine";
import { loadModelRunner } from "./engine/model-runner";
import { createApp, type ServerState } from "./server/app";
import { type LoadReport, Registration } from "./server/registration";
import { UsageWitness } from "./usage/witness";
import { journalDir, parseConfig, USAGE } from "./config";

/** Bounds of the drain's last steps (the grace for running work is --grace-ms). */
const USAGE_FLUSH_MS = 5_000;
const SOCKET_DRAIN_MS = 1_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The registry's load figures, summed over this replica's engines. */
function loadReport(engines: Iterable<Engine>): LoadReport {
  const r: LoadReport = { models: [], slots: 0, in_flight: 0, queue_depth: 0, kv_free_blocks: 0, served: 0 };
  for (const e of engines) {
    const s = e.stats();
    r.models.push(e.name);
    r.slots += e.opts.maxBatch;
    r.in_flight += s.running;
    r.queue_depth += s.waiting;
    r.kv_free_blocks += s.kv.blocksFree;
    for (const n of Object.values(s.counters.requests)) r.served += n;
  }
  return r;
}

async function warm(engine: Engine): Promise<void> {
  const bos = engine.runner.manifest.bos_token_id;
  await new Promise<void>((resolve) => {
    engine.submit(
      {
        model: engine.name,
        input_ids: [bos, 415, 2936],
        max_tokens: 2,
        temperature: 0,
        top_p: 1,
        top_k: 0,
        stop_token_ids: [],
        cache_salt: "\u0000warmup",
        request_id: "warmup",
      },
      (out) => out.finish && resolve(),
    );
  });
  await engine.embed([[bos, 415]]);
  // The first constrained request builds the vocabulary trie (0.35-0.6 s); do it here, not in a live stream.
  await new Promise<void>((resolve) => {
    engine.submit(
      {
        model: engine.name,
        input_ids: [bos, 415],
        max_tokens: 1,
        temperature: 0,
        top_p: 1,
        top_k: 0,
        stop_token_ids: [],
        cache_salt: "\u0000warmup",
        request_id: "warmup-json",
        response_format: { type: "json_object" },
      },
      (out) => out.finish && resolve(),
    );
  });
  engine.resetMetrics();
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    // One option per line: the usage string is long.
    console.log(USAGE.replace(/ \[/g, "\n  ["));
    process.exit(0);
  }
  let cfg: ReturnType<typeof parseConfig>;
  try {
    cfg = parseConfig(argv, process.env);
  } catch (e) {
    // One line: node's parseArgs appends advice about positionals that does not apply here.
    console.error(`backend: ${(e as Error).message.split("\n")[0]!.replace(/\. To specify.*$/, "")} (see --help)`);
    process.exit(2);
  }
  if (cfg.token === undefined) {
    // config.ts already refused this on a non-loopback address unless --insecure was given.
    const banner = cfg.insecure
      ? `WARNING: --insecure: the backend serves ${cfg.host} WITHOUT AUTHENTICATION. Anyone who can reach it can run and cancel work. Set BACKEND_TOKEN.`
      : `backend: no BACKEND_TOKEN: unauthenticated, which is allowed only because ${cfg.host} is a loopback address`;
    console.error(cfg.insecure ? `\n${"!".repeat(100)}\n${banner}\n${"!".repeat(100)}\n` : banner);
  }
  const state: ServerState = {
    engines: new Map(),
    token: cfg.token,
    metricsToken: cfg.metricsToken,
    maxBodyBytes: cfg.maxBodyBytes,
    ready: false,
    draining: false,
    usage: null,
  };
  const app = createApp(state);
  const server = serve({ fetch: app.fetch, port: cfg.port, hostname: cfg.host });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const port = (server.address() as AddressInfo).port;
  console.error(`backend listening on http://${cfg.host}:${port} (loading models)`);

  // Opened before any model loads: nothing is served (ready=false) until the journal is writable.
  const dir = journalDir(cfg, port);
  const witness = await UsageWitness.open({
    dir,
    segmentBytes: cfg.usage.segmentBytes,
    keepSegments: cfg.usage.keepSegments,
    recentCapacity: cfg.usage.recent,
    backend: `${hostname()}:${port}`.slice(-200),
    delivery: cfg.usage,
  });
  state.usage = witness;
  console.error(
    `backend: usage journal ${dir}: ${witness.journal.pendingCount} record(s) pending; ` +
      (cfg.usage.url ? `delivering to ${cfg.usage.url}` : "delivery off (no --usage-url)"),
  );

  let registration: Registration | null = null;
  let stopping = false;
  const shutdown = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`backend: ${sig}: draining (grace ${cfg.graceMs} ms)`);
    // Every step below is bounded; this bounds their sum too, and names the step that overran. Exiting
    // then loses nothing: each usage record is fsync'd before its response, and replayed by the next start.
    let step = "announce";
    const limitMs = (cfg.registry?.announceMs ?? 0) + cfg.graceMs + USAGE_FLUSH_MS + SOCKET_DRAIN_MS + 15_000;
    setTimeout(() => {
      console.error(`backend: drain overran ${limitMs} ms in step '${step}'; exiting`);
      process.exit(0);
    }, limitMs).unref();
    if (registration && state.ready) {
      // Still admitting while the worker's isolates learn of it: a request routed here meanwhile is served, not bounced.
      await registration.drain();
      await sleep(cfg.registry?.announceMs ?? 0);
    }
    state.draining = true;
    step = "finish running work";
    await Promise.all([...state.engines.values()].map((e) => e.drain(cfg.graceMs)));
    step = "deliver usage";
    // Every final record is on disk before exit; undelivered ones are replayed by the next start, but a
    // replica that never comes back (scale-down) must hand them over now.
    if (!(await witness.flush(USAGE_FLUSH_MS)))
      console.error(`backend: ${witness.stats().pending} usage record(s) undelivered; kept in ${dir} for replay`);
    step = "close journal";
    await witness.close();
    step = "deregister";
    await registration?.deregister();
    step = "close sockets";
    // The last lines of finished streams may still sit in the socket's buffers: let them drain, then force.
    server.close();
    const closing = server as unknown as { closeIdleConnections?: () => void; closeAllConnections?: () => void };
    closing.closeIdleConnections?.();
    await sleep(Math.min(SOCKET_DRAIN_MS, cfg.graceMs));
    closing.closeAllConnections?.();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));

  for (const dir of cfg.models) {
    const runner = await loadModelRunner(path.resolve(dir), {
      threads: cfg.threads,
      ep: cfg.ep,
      runtime: cfg.runtime,
      graph: cfg.graph,
      batchInvariant: cfg.batchInvariant,
    });
    console.error(`backend: ${runner.manifest.name}: graph ${runner.graph.file}: ${runner.graph.reason}`);
    const engine = new Engine(runner, cfg.engine);
    if (state.engines.has(engine.name)) throw new Error(`two models are named '${engine.name}'`);
    await warm(engine);
    state.engines.set(engine.name, engine);
  }
  // Test hook: hold the not-ready window open so /health's 503 is observable.
  if (cfg.warmupDelayMs > 0) await new Promise((r) => setTimeout(r, cfg.warmupDelayMs));
  state.ready = true;
  console.log(`backend ready on http://${cfg.host}:${port} models=${[...state.engines.keys()].join(",")}`);
  if (cfg.registry && !stopping) {
    const url = cfg.registry.advertiseUrl ?? `http://${cfg.host.includes(":") ? `[${cfg.host}]` : cfg.host}:${port}`;
    registration = new Registration(cfg.registry, url, cfg.version, () => loadReport(state.engines.values()));
    await registration.start();
  }
}

main().catch((e: unknown) => {
  console.error(`backend: ${(e as Error).message}`);
  process.exit(1);
});
