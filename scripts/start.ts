/**
 * `npm start`: the whole stack locally, offline.
 *   dev models (built if missing) -> D1 migrations (local) -> backend replica(s) -> worker (wrangler dev) -> dev key
 * Every setting is read in scripts/lib/launch-config.ts (`npm start -- --help` lists them). Secrets default to
 * values generated once and kept in $DEV_STATE_DIR/secrets.json, so the dev key survives restarts.
 * A backend or the worker that dies is restarted with backoff (scripts/lib/supervisor.ts), one line each; the
 * worker is also probed over HTTP, so a wrangler dev that outlives its workerd runtime is restarted too.
 * Backends join the worker's replica registry (--register; REGISTRY_TOKEN), as they would in production;
 * wrangler.toml's static TIERS, pointed at the same ports, stays the seed.
 */
import { spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { MIN_SECRET_LENGTH } from "../worker/config";
import { bannerText } from "./lib/banner";
import { parseLaunchConfig, type LaunchConfig } from "./lib/launch-config";
import { applyLocalMigrations, OFFLINE_ENV, wranglerTiers } from "./lib/local-worker";
import { freePort, lineSplitter, portIsFree, spawnUntilHttpReady, spawnUntilReady } from "./lib/processes";
import { Supervisor } from "./lib/supervisor";
import { WORKER_PATHS } from "../contract/routes";

const root = resolve(import.meta.dirname, "..");
const bin = (name: string) => resolve(root, "node_modules/.bin", name);

interface Secrets {
  apiKey: string;
  adminToken: string;
  backendToken: string;
  metricsToken: string;
  cacheKeySecret?: string;
  /** The backend's usage deliveries to the worker's POST /internal/usage (both sides hold it). */
  usageToken: string;
  /** Backends' registration with the worker's replica registry (both sides hold it). */
  registryToken: string;
}

/**
 * A worker that misses 4 probes in a row is restarted. A dead one refuses at once: relaunched about 8 s
 * after it died. A slow one (a loaded machine) must fail to answer /health for about 28 s first.
 */
const WORKER_PROBE = { intervalMs: 2_000, timeoutMs: 5_000, failures: 4 };

function fail(message: string): never {
  console.error(`npm start: ${message}`);
  process.exit(1);
}

function loadSecrets(cfg: LaunchConfig): Secrets {
  mkdirSync(cfg.stateDir, { recursive: true });
  const file = resolve(cfg.stateDir, "secrets.json");
  const saved: Partial<Secrets> = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : {};
  const o = cfg.secrets;
  // A token saved by an older launcher that the worker would now refuse (worker/config.ts) is replaced.
  const fresh = (v: string | undefined) => (v !== undefined && v.length >= MIN_SECRET_LENGTH ? v : undefined);
  const secrets: Secrets = {
    apiKey: o.apiKey ?? saved.apiKey ?? `sk-dev-${randomBytes(24).toString("hex")}`,
    adminToken: o.adminToken ?? fresh(saved.adminToken) ?? randomBytes(24).toString("hex"),
    backendToken: o.backendToken ?? fresh(saved.backendToken) ?? randomBytes(24).toString("hex"),
    metricsToken: o.metricsToken ?? saved.metricsToken ?? randomBytes(24).toString("hex"),
    cacheKeySecret: saved.cacheKeySecret ?? randomBytes(24).toString("hex"),
    usageToken: o.usageToken ?? fresh(saved.usageToken) ?? randomBytes(24).toString("hex"),
    registryToken: o.registryToken ?? fresh(saved.registryToken) ?? randomBytes(24).toString("hex"),
  };
  writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}

async function main() {
  let cfg: LaunchConfig;
  try {
    cfg = parseLaunchConfig(root, process.argv.slice(2), process.env);
  } catch (e) {
    fail((e as Error).message);
  }
  const { port, backendPorts, models } = cfg;
  for (const [name, p] of [
    ["PORT", port],
    ...backendPorts.map((b, i) => [i === 0 ? "BACKEND_PORT" : `BACKEND_PORT+${i}`, b] as const),
  ] as const) {
    if (!(await portIsFree(p)))
      fail(`port ${p} (${name}) is already in use; set ${name.replace(/\+\d+$/, "")}=<free port> and retry`);
  }
  const secrets = loadSecrets(cfg);
  const supervisors: Supervisor[] = [];
  let stopping = false;
  // Backends first: each drains and deregisters while the worker still answers; then the worker.
  const stopAll = async () => {
    await Promise.all(supervisors.filter((s) => s !== worker).map((s) => s.stop()));
    await worker?.stop();
  };
  let worker: Supervisor | undefined;
  const shutdown = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await stopAll();
    process.exit(code);
  };
  process.on("SIGINT", () => void shutdown(0));
  process.on("SIGTERM", () => void shutdown(0));
  // If the launcher itself dies, its detached children must not outlive it.
  process.on("exit", () => {
    for (const s of supervisors) s.killNow();
  });
  const say = (line: string) => console.error(`npm start: ${line}`);
  const giveUp = (reason: string) => {
    say(`${reason}; stopping`);
    void shutdown(1);
  };
  const abort = async (message: string): Promise<never> => {
    await stopAll();
    return fail(message);
  };

  console.log(`[1/5] dev models (${models.join(", ")})`);
  const built = spawnSync(bin("tsx"), ["scripts/dev-models.ts", "--preset", models.join(",")], {
    cwd: root,
    stdio: "inherit",
  });
  if (built.status !== 0) fail("building the dev models failed (see above)");
  for (const m of models) {
    if (!existsSync(resolve(root, "models/dev", m, "model.json")))
      fail(`model models/dev/${m} is missing after the build`);
  }

  console.log("[2/5] D1 migrations (local), while the backends load");
  const persist = resolve(cfg.stateDir, "wrangler-state");
  const migrated = applyLocalMigrations(root, persist);
  migrated.catch(() => {}); // awaited below, after the backends; not an unhandled rejection meanwhile

  console.log(`[3/5] backend${backendPorts.length > 1 ? "s" : ""} on ${backendPorts.map((p) => `:${p}`).join(", ")}`);
  // USAGE_TOKEN through the environment, never argv (visible in ps): the backend delivers its usage records to the worker.
  const backendEnv = {
    ...process.env,
    BACKEND_TOKEN: secrets.backendToken,
    METRICS_TOKEN: secrets.metricsToken,
    USAGE_TOKEN: secrets.usageToken,
    REGISTRY_TOKEN: secrets.registryToken,
  };
  const launchBackend = (bport: number) => async (onSpawn: (c: ChildProcess) => void) =>
    (
      await spawnUntilReady(
        // node --import tsx, not the tsx CLI: the child is the server itself, so its pid is the one to signal.
        process.execPath,
        [
          "--import",
          "tsx",
          "gpu-backend/main.ts",
          ...models.flatMap((m) => ["--model", `models/dev/${m}`]),
          "--port",
          String(bport),
          "--host",
          "127.0.0.1",
          // Under the state dir, so a throwaway DEV_STATE_DIR leaves nothing in the repo; the same dir on a restart, so the journal replays.
          "--journal-dir",
          resolve(cfg.stateDir, "journal", String(bport)),
          "--usage-url",
          `http://127.0.0.1:${port}${WORKER_PATHS.usage}`,
          // A worker restart is seconds here: retry deliveries at that scale, not production's minute.
          "--usage-retry-max-ms",
          "3000",
          "--register",
          `http://127.0.0.1:${port}`,
          ...(cfg.backendThreads ? ["--threads", cfg.backendThreads] : []),
        ],
        {
          cwd: root,
          env: backendEnv,
          detached: true,
          ready: /^backend ready on /,
          timeoutMs: 180_000,
          label: `backend :${bport}`,
          onSpawn,
        },
      )
    ).child;
  const backends = backendPorts.map(
    (bport) =>
      new Supervisor({
        label: `backend :${bport}`,
        launch: launchBackend(bport),
        onChild: (c) => pipeLogs(cfg, c, "backend"),
        say,
        giveUp,
      }),
  );
  supervisors.push(...backends);
  await Promise.all(backends.map((s) => s.start())).catch((err: Error) => abort(err.message));
  for (const [i, s] of backends.entries()) console.log(`      backend :${backendPorts[i]} ready (pid ${s.child?.pid})`);
  await migrated.catch((err: Error) => abort(err.message));

  const tiers = wranglerTiers(
    root,
    backendPorts.map((p) => `http://127.0.0.1:${p}`),
    models,
  );
  if (Object.keys(tiers).length === 0) await abort(`no tier in wrangler.toml is served by MODELS=${models.join(",")}`);
  console.log(`[4/5] worker (wrangler dev, local) on :${port}: ${Object.keys(tiers).join(", ")}`);
  // Secrets go through a 0600 env file, never argv (readable by anyone in /proc/<pid>/cmdline).
  const workerVars = resolve(cfg.stateDir, "worker.vars");
  const envLine = (k: string, v: string) => `${k}=${JSON.stringify(v)}\n`;
  writeFileSync(
    workerVars,
    envLine("ADMIN_TOKEN", secrets.adminToken) +
      envLine("BACKEND_TOKEN", secrets.backendToken) +
      envLine("CACHE_KEY_SECRET", secrets.cacheKeySecret ?? "") +
      envLine("USAGE_TOKEN", secrets.usageToken) +
      envLine("REGISTRY_TOKEN", secrets.registryToken) +
      envLine("REGISTRY_ALLOWED_URLS", "http://127.0.0.1:*") +
      Object.entries(cfg.workerVars)
        .map(([k, v]) => envLine(k, v))
        .join(""),
    { mode: 0o600 },
  );
  worker = new Supervisor({
    label: `worker :${port}`,
    launch: async (onSpawn) =>
      spawnUntilHttpReady(
        bin("wrangler"),
        [
          "dev",
          // Its own devtools port: wrangler's default 9229 makes a second stack on the host (another
          // checkout's npm start or npm test) fail to start.
          "--inspector-port",
          String(await freePort()),
          "--local",
          "--ip",
          "127.0.0.1",
          "--port",
          String(port),
          "--persist-to",
          persist,
          "--show-interactive-dev-session=false",
          "--var",
          `TIERS:${JSON.stringify(tiers)}`,
          "--env-file",
          workerVars,
        ],
        {
          cwd: root,
          env: OFFLINE_ENV,
          detached: true,
          url: `http://127.0.0.1:${port}${WORKER_PATHS.health}`,
          timeoutMs: 120_000,
          label: `worker :${port}`,
          onSpawn,
          // Only the worker stamps request ids: never mistake another server on the port for it.
          isOurs: (res) => res.headers.get("x-request-id")?.startsWith("req_") ?? false,
        },
      ),
    onChild: (c) => pipeLogs(cfg, c, "worker"),
    say,
    giveUp,
    // kill -9 of workerd leaves wrangler dev running and serving nothing: probe the port, not the process.
    probe: {
      check: () =>
        fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(WORKER_PROBE.timeoutMs) }).then(
          (r) => r.ok,
        ),
      intervalMs: WORKER_PROBE.intervalMs,
      failures: WORKER_PROBE.failures,
    },
  });
  supervisors.push(worker);
  await worker.start().catch((err: Error) => abort(err.message));
  console.log(`      worker :${port} ready (pid ${worker.child?.pid})`);

  console.log("[5/5] dev API key");
  const base = `http://127.0.0.1:${port}`;
  await ensureDevKey(base, secrets, Object.keys(tiers)).catch((err: Error) =>
    abort(`creating the dev key failed: ${err.message}`),
  );
  const chatModel =
    ["mistral-small", "mistral-tiny", "mistral-medium"].find((m) => m in tiers) ?? Object.keys(tiers)[0]!;
  printBanner(base, secrets, chatModel, backendPorts);
}

async function ensureDevKey(base: string, secrets: Secrets, tiers: string[]) {
  const res = await fetch(`${base}/v1/admin/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${secrets.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({
      name: "dev",
      key: secrets.apiKey,
      tiers,
      rpm: 600,
      tpm: 1_000_000,
      monthly_budget_micros: 100_000_000,
    }),
  });
  // 409: the key already exists from an earlier run (same key across restarts).
  if (!res.ok && res.status !== 409) throw new Error(`admin API answered ${res.status}: ${await res.text()}`);
}

function pipeLogs(cfg: LaunchConfig, child: ChildProcess, label: string) {
  if (cfg.quietLogs) return;
  const handlers = lineSplitter((line) => console.log(`[${label}] ${line}`));
  child.stdout?.on("data", handlers());
  child.stderr?.on("data", handlers());
}

function printBanner(base: string, secrets: Secrets, model: string, backendPorts: number[]) {
  console.log(
    bannerText({
      base,
      apiKey: secrets.apiKey,
      adminToken: secrets.adminToken,
      metricsToken: secrets.metricsToken,
      model,
      backendPorts,
    }),
  );
  const backends = backendPorts.map((p) => `http://127.0.0.1:${p}`).join(",");
  console.log(`moe-edge stack ready: worker ${base} backend ${backends} (Ctrl-C stops everything)`);
}

main().catch((err: unknown) => fail(err instanceof Error ? err.message : String(err)));
