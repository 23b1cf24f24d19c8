/**
 * `npm run bench:edge [-- --json] [--requests 200] [--no-inspector]`: what the edge costs. Starts the local stack (tiny model),
 * then times the same prompt through the worker (/v1/chat/completions, max_tokens 1) and directly against the
 * backend (/v1/generate with the same ids), at 1 and 16 concurrent clients. Prints added latency (p50/p99)
 * and the local runtime's (workerd) CPU time per request, read from /proc.
 *
 * Also the local runtime's fixed floor: GET /health through the worker (no auth, no I/O) against the
 * backend's GET /health, at the same concurrency. `added_latency` minus `runtime_floor` is what our
 * code costs; the floor is wrangler dev on this box (its proxy worker, and an inspector session that
 * receives a DevTools event per console.log and per subrequest, in workerd and in wrangler's Node process:
 * `wrangler_node_cpu_ms_per_request`). Deployed Workers pay neither.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { applyChatTemplate } from "../../worker/tokenizer/index";
import { applyLocalMigrations, startLocalWorker, wranglerTiers } from "../lib/local-worker";
import { parseCli } from "../lib/cli";
import { freePorts, spawnUntilReady, stopProcess } from "../lib/processes";

const root = resolve(import.meta.dirname, "../..");
const { values: args } = parseCli("bench:edge", process.argv.slice(2), {
  usage: `usage: npm run bench:edge [-- --json] [--requests 200] [--no-inspector]
Starts the local stack (tiny model) and times the same prompt through the worker and directly against
the backend at 1 and 16 clients: added latency p50/p99 and workerd CPU per request.`,
  options: { json: { type: "boolean" }, "no-inspector": { type: "boolean" }, requests: { type: "string" } },
});
const json = args.json ?? false;
const noInspector = args["no-inspector"] ?? false;
const perLevel = args.requests === undefined ? 200 : Number(args.requests);
if (!Number.isInteger(perLevel) || perLevel < 1) {
  console.error(`bench:edge: --requests must be a positive integer, got "${args.requests}"`);
  process.exit(2);
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Runs `total` calls of `fn` with `concurrency` clients; returns per-call latencies in ms. */
async function load(concurrency: number, total: number, fn: () => Promise<void>): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < total) latencies.push(await timed(fn));
    }),
  );
  return latencies;
}

/** The process ids under `root` (this bench's stack only, not other stacks on the box). */
function descendants(root: number): Set<string> {
  const children = new Map<string, string[]>();
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const ppid = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ")[1];
      children.set(ppid, [...(children.get(ppid) ?? []), pid]);
    } catch {
      // process went away
    }
  }
  const out = new Set<string>();
  const todo = [String(root)];
  while (todo.length) for (const c of children.get(todo.pop()!) ?? []) if (!out.has(c)) out.add(c), todo.push(c);
  return out;
}

let stackRoot = 0;

/** utime + stime in ms of this stack's processes whose command line matches (workerd: the local Workers runtime). */
function cpuMs(match: (cmd: string) => boolean = (cmd) => cmd.includes("workerd")): number {
  const ticks = 100; // USER_HZ on Linux
  let total = 0;
  for (const pid of descendants(stackRoot)) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (!match(cmd)) continue;
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      total += ((Number(fields[11]) + Number(fields[12])) * 1000) / ticks;
    } catch {
      // process went away
    }
  }
  return total;
}

/** wrangler's own Node process (it receives the inspector's log and network events). */
const isWranglerNode = (cmd: string) => cmd.includes("wrangler-dist") && cmd.includes("dev");

interface Stack {
  base: string;
  stop(): Promise<void>;
}

/** `npm start`'s stack: wrangler dev (with its inspector session) + backend. */
async function startDevStack(
  port: number,
  backendPort: number,
  stateDir: string,
  adminToken: string,
  backendToken: string,
): Promise<Stack> {
  const stack = await spawnUntilReady(resolve(root, "node_modules/.bin/tsx"), ["scripts/start.ts"], {
    cwd: root,
    env: {
      ...process.env,
      PORT: String(port),
      BACKEND_PORT: String(backendPort),
      DEV_STATE_DIR: stateDir,
      MODELS: "tiny",
      ADMIN_TOKEN: adminToken,
      BACKEND_TOKEN: backendToken,
      QUIET_LOGS: "1",
    },
    ready: /stack ready/,
    timeoutMs: 300_000,
    label: "stack",
  });
  stackRoot = stack.child.pid ?? 0;
  return { base: `http://127.0.0.1:${port}`, stop: () => stopProcess(stack.child, 10_000) };
}

/**
 * --no-inspector: the same worker in workerd through unstable_startWorker with no inspector session, so
 * no DevTools event per log line and per subrequest: what is left is our code plus workerd itself.
 */
async function startBareStack(
  backendPort: number,
  stateDir: string,
  adminToken: string,
  backendToken: string,
): Promise<Stack> {
  const backend = await spawnUntilReady(
    resolve(root, "node_modules/.bin/tsx"),
    [
      "gpu-backend/main.ts",
      "--model",
      "models/dev/tiny",
      "--port",
      String(backendPort),
      "--host",
      "127.0.0.1",
      "--token",
      backendToken,
      "--threads",
      process.env.BACKEND_THREADS ?? "1",
    ],
    { cwd: root, env: process.env, ready: /backend ready/, timeoutMs: 240_000, label: "backend" },
  );
  await applyLocalMigrations(root, stateDir);
  const worker = await startLocalWorker({
    root,
    persistDir: stateDir,
    tiers: wranglerTiers(root, `http://127.0.0.1:${backendPort}`),
    backendToken,
    adminToken,
  });
  stackRoot = process.pid; // workerd runs as this process's child here
  return {
    base: worker.url,
    stop: async () => {
      await worker.dispose();
      await stopProcess(backend.child, 10_000);
    },
  };
}

async function main() {
  const [port, backendPort] = await freePorts(2);
  const stateDir = mkdtempSync(join(tmpdir(), "moe-edge-bench-"));
  const adminToken = randomBytes(16).toString("hex");
  const backendToken = randomBytes(16).toString("hex");
  const stack = noInspector
    ? await startBareStack(backendPort, stateDir, adminToken, backendToken)
    : await startDevStack(port, backendPort, stateDir, adminToken, backendToken);
  const base = stack.base;
  try {
    const created = await fetch(`${base}/v1/admin/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({
        name: "bench",
        tiers: ["mistral-tiny"],
        rpm: 1_000_000,
        tpm: 1_000_000_000,
        monthly_budget_micros: 1_000_000_000_000,
      }),
    });
    const { key } = (await created.json()) as { key: string };
    const messages = [{ role: "user" as const, content: "Say hello to the edge benchmark." }];
    const ids = applyChatTemplate(messages);
    const viaWorker = async () => {
      const res = await fetch(`${base}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "mistral-tiny", messages, max_tokens: 1, temperature: 0 }),
      });
      if (!res.ok) throw new Error(`worker answered ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
    };
    const direct = async () => {
      const res = await fetch(`http://127.0.0.1:${backendPort}/v1/generate`, {
        method: "POST",
        headers: { authorization: `Bearer ${backendToken}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: "tiny",
          input_ids: ids,
          max_tokens: 1,
          request_id: `bench-${randomBytes(6).toString("hex")}`,
        }),
      });
      if (!res.ok) throw new Error(`backend answered ${res.status}`);
      await res.arrayBuffer();
    };
    await load(4, 20, viaWorker); // warm up both paths
    await load(4, 20, direct);
    const workerHealth = async () => {
      const res = await fetch(`${base}/health`);
      if (!res.ok) throw new Error(`worker /health answered ${res.status}`);
      await res.arrayBuffer();
    };
    const backendHealth = async () => {
      const res = await fetch(`http://127.0.0.1:${backendPort}/health`);
      if (!res.ok) throw new Error(`backend /health answered ${res.status}`);
      await res.arrayBuffer();
    };
    await load(4, 20, workerHealth);
    const result: Record<string, { p50_ms: number; p99_ms: number; direct_p50_ms: number; direct_p99_ms: number }> = {};
    const floor: Record<
      string,
      {
        p50_ms: number;
        p99_ms: number;
        worker_health_p50_ms: number;
        worker_health_p99_ms: number;
        backend_health_p50_ms: number;
        backend_health_p99_ms: number;
      }
    > = {};
    let workerdMs = 0;
    let wranglerMs = 0;
    let floorCpuMs = 0;
    let workerRequests = 0;
    for (const concurrency of [1, 16]) {
      const bh = await load(concurrency, perLevel, backendHealth);
      const floorCpu0 = cpuMs();
      const wh = await load(concurrency, perLevel, workerHealth);
      floorCpuMs += cpuMs() - floorCpu0;
      floor[String(concurrency)] = {
        p50_ms: quantile(wh, 0.5) - quantile(bh, 0.5),
        p99_ms: quantile(wh, 0.99) - quantile(bh, 0.99),
        worker_health_p50_ms: quantile(wh, 0.5),
        worker_health_p99_ms: quantile(wh, 0.99),
        backend_health_p50_ms: quantile(bh, 0.5),
        backend_health_p99_ms: quantile(bh, 0.99),
      };
      const d = await load(concurrency, perLevel, direct);
      const cpu0 = cpuMs();
      const node0 = cpuMs(isWranglerNode);
      const w = await load(concurrency, perLevel, viaWorker);
      workerdMs += cpuMs() - cpu0;
      wranglerMs += cpuMs(isWranglerNode) - node0;
      workerRequests += perLevel;
      result[String(concurrency)] = {
        p50_ms: quantile(w, 0.5) - quantile(d, 0.5),
        p99_ms: quantile(w, 0.99) - quantile(d, 0.99),
        direct_p50_ms: quantile(d, 0.5),
        direct_p99_ms: quantile(d, 0.99),
      };
    }
    const summary = {
      added_latency: result,
      workerd_cpu_ms_per_request: workerdMs / workerRequests,
      requests_per_level: perLevel,
      runtime_floor: floor,
      runtime_floor_workerd_cpu_ms_per_request: floorCpuMs / workerRequests,
      // Under --no-inspector there is no separate wrangler process (it runs inside this one).
      wrangler_node_cpu_ms_per_request: noInspector ? null : wranglerMs / workerRequests,
      runtime: noInspector ? "unstable_startWorker, no inspector" : "wrangler dev (npm start)",
    };
    if (json) console.log(JSON.stringify(summary));
    else {
      console.log(`edge cost (worker vs direct backend, max_tokens 1, tiny model; runtime: ${summary.runtime})`);
      for (const [c, r] of Object.entries(result))
        console.log(
          `  ${c.padStart(2)} clients: added p50 ${r.p50_ms.toFixed(2)} ms, p99 ${r.p99_ms.toFixed(2)} ms (direct p50 ${r.direct_p50_ms.toFixed(2)} ms, p99 ${r.direct_p99_ms.toFixed(2)} ms)`,
        );
      for (const [c, f] of Object.entries(floor))
        console.log(
          `  ${c.padStart(2)} clients: runtime floor p50 ${f.p50_ms.toFixed(2)} ms, p99 ${f.p99_ms.toFixed(2)} ms (worker /health vs backend /health)`,
        );
      const node = summary.wrangler_node_cpu_ms_per_request;
      console.log(
        `  workerd CPU per request: ${summary.workerd_cpu_ms_per_request.toFixed(2)} ms (floor: ${summary.runtime_floor_workerd_cpu_ms_per_request.toFixed(2)} ms per /health)${node === null ? "" : `; wrangler's Node process: ${node.toFixed(2)} ms`}`,
      );
      console.log("  goal: p50 <= 3 ms, p99 <= 15 ms added");
    }
  } finally {
    await stack.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench:edge: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
