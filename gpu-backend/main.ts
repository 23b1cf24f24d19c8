/**
 * `npm run backend -- --model models/dev/tiny --port 8788`: the inference server.
 * Listens first (GET /health answers 503 while loading), loads and warms every model, then prints one
 * "backend ready on http://HOST:PORT models=a,b" line. SIGTERM/SIGINT: stop admitting (503), let running
 * work finish for --grace-ms, cancel the rest, flush the usage journal, exit 0.
 */
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import path from "node:path";
import { serve } from "@hono/node-server";
import { Engine } from "./engine/engine";
import { loadModelRunner } from "./engine/model-runner";
import { createApp, type ServerState } from "./server/app";
import { UsageWitness } from "./usage/witness";
import { journalDir, parseConfig, USAGE } from "./config";

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

  let stopping = false;
  const shutdown = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    state.draining = true;
    console.error(`backend: ${sig}: draining (grace ${cfg.graceMs} ms)`);
    await Promise.all([...state.engines.values()].map((e) => e.drain(cfg.graceMs)));
    // Every final record is on disk before exit; undelivered ones are replayed by the next start.
    await witness.close();
    server.close();
    // Idle keep-alive sockets would hold close() open.
    (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
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
}

main().catch((e: unknown) => {
  console.error(`backend: ${(e as Error).message}`);
  process.exit(1);
});
