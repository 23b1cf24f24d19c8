/**
 * `npm start`: the whole stack locally, offline.
 *   dev models (built if missing) -> D1 migrations (local) -> backend -> worker (wrangler dev, miniflare) -> dev key
 * Env: PORT (worker, 8787), BACKEND_PORT (8788), DEV_API_KEY, ADMIN_TOKEN, BACKEND_TOKEN, MODELS (tiny,small,medium),
 *      DEV_STATE_DIR (.dev: secrets + local D1/DO state), QUIET_LOGS=1 (no child logs), BACKEND_THREADS (ORT threads).
 * Secrets default to values generated once and kept in .dev/secrets.json, so the dev key survives restarts.
 */
import { spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { applyLocalMigrations, OFFLINE_ENV, wranglerTiers } from "./lib/local-worker";
import { lineSplitter, portIsFree, spawnUntilHttpReady, spawnUntilReady, stopProcess } from "./lib/processes";

const root = resolve(import.meta.dirname, "..");
const stateDir = resolve(root, process.env.DEV_STATE_DIR ?? ".dev");
const bin = (name: string) => resolve(root, "node_modules/.bin", name);

interface Secrets {
  apiKey: string;
  adminToken: string;
  backendToken: string;
}

function fail(message: string): never {
  console.error(`npm start: ${message}`);
  process.exit(1);
}

function loadSecrets(): Secrets {
  mkdirSync(stateDir, { recursive: true });
  const file = resolve(stateDir, "secrets.json");
  const saved: Partial<Secrets> = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : {};
  const secrets: Secrets = {
    apiKey: process.env.DEV_API_KEY ?? saved.apiKey ?? `sk-dev-${randomBytes(24).toString("hex")}`,
    adminToken: process.env.ADMIN_TOKEN ?? saved.adminToken ?? randomBytes(24).toString("hex"),
    backendToken: process.env.BACKEND_TOKEN ?? saved.backendToken ?? randomBytes(24).toString("hex"),
  };
  writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}


function parsePort(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`${name}=${raw} is not a valid port`);
  return port;
}

async function main() {
  const port = parsePort("PORT", 8787);
  const backendPort = parsePort("BACKEND_PORT", 8788);
  const models = (process.env.MODELS ?? "tiny,small,medium").split(",").map((m) => m.trim()).filter(Boolean);
  if (port === backendPort) fail(`PORT and BACKEND_PORT are both ${port}; pick two different ports`);
  for (const [name, p] of [["PORT", port], ["BACKEND_PORT", backendPort]] as const) {
    if (!(await portIsFree(p))) fail(`port ${p} (${name}) is already in use; set ${name}=<free port> and retry`);
  }
  const secrets = loadSecrets();
  const children: ChildProcess[] = [];
  let stopping = false;
  const shutdown = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await Promise.all(children.map((c) => stopProcess(c)));
    process.exit(code);
  };
  process.on("SIGINT", () => void shutdown(0));
  process.on("SIGTERM", () => void shutdown(0));

  console.log(`[1/5] dev models (${models.join(", ")})`);
  const built = spawnSync(bin("tsx"), ["scripts/dev-models.ts", "--preset", models.join(",")], { cwd: root, stdio: "inherit" });
  if (built.status !== 0) fail("building the dev models failed (see above)");
  for (const m of models) {
    if (!existsSync(resolve(root, "models/dev", m, "model.json"))) fail(`model models/dev/${m} is missing after the build`);
  }

  console.log("[2/5] D1 migrations (local)");
  const persist = resolve(stateDir, "wrangler-state");
  try {
    applyLocalMigrations(root, persist);
  } catch (err) {
    fail((err as Error).message);
  }

  console.log(`[3/5] backend on :${backendPort}`);
  const backend = await spawnUntilReady(
    bin("tsx"),
    [
      "gpu-backend/main.ts", ...models.flatMap((m) => ["--model", `models/dev/${m}`]), "--port", String(backendPort), "--host", "127.0.0.1",
      ...(process.env.BACKEND_THREADS ? ["--threads", process.env.BACKEND_THREADS] : []),
    ],
    { cwd: root, env: { ...process.env, BACKEND_TOKEN: secrets.backendToken }, ready: /^backend ready on /, timeoutMs: 180_000, label: "backend" },
  ).catch((err: Error) => fail(err.message));
  children.push(backend.child);
  backend.child.on("exit", (code) => {
    if (!stopping) {
      console.error(`backend exited (${code}); stopping`);
      void shutdown(1);
    }
  });
  pipeLogs(backend.child, "backend");

  const tiers = wranglerTiers(root, `http://127.0.0.1:${backendPort}`, models);
  if (Object.keys(tiers).length === 0) fail(`no tier in wrangler.toml is served by MODELS=${models.join(",")}`);
  console.log(`[4/5] worker (wrangler dev, local) on :${port}: ${Object.keys(tiers).join(", ")}`);
  const worker = await spawnUntilHttpReady(
    bin("wrangler"),
    [
      "dev", "--local", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", persist,
      "--show-interactive-dev-session=false",
      "--var", `TIERS:${JSON.stringify(tiers)}`,
      "--var", `ADMIN_TOKEN:${secrets.adminToken}`,
      "--var", `BACKEND_TOKEN:${secrets.backendToken}`,
    ],
    { cwd: root, env: OFFLINE_ENV, url: `http://127.0.0.1:${port}/health`, timeoutMs: 120_000, label: "worker",
      // Only the worker stamps request ids: never mistake another server on the port for it.
      isOurs: (res) => res.headers.get("x-request-id")?.startsWith("req_") ?? false },
  ).catch(async (err: Error) => {
    await Promise.all(children.map((c) => stopProcess(c)));
    return fail(err.message);
  });
  children.push(worker);
  worker.on("exit", (code) => {
    if (!stopping) {
      console.error(`worker exited (${code}); stopping`);
      void shutdown(1);
    }
  });
  pipeLogs(worker, "worker");

  console.log("[5/5] dev API key");
  const base = `http://127.0.0.1:${port}`;
  await ensureDevKey(base, secrets, Object.keys(tiers)).catch(async (err: Error) => {
    await Promise.all(children.map((c) => stopProcess(c)));
    fail(`creating the dev key failed: ${err.message}`);
  });
  const chatModel = ["mistral-small", "mistral-tiny", "mistral-medium"].find((m) => m in tiers) ?? Object.keys(tiers)[0];
  printBanner(base, secrets, chatModel);
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

function pipeLogs(child: ChildProcess, label: string) {
  if (process.env.QUIET_LOGS === "1") return;
  const handlers = lineSplitter((line) => console.log(`[${label}] ${line}`));
  child.stdout?.on("data", handlers());
  child.stderr?.on("data", handlers());
}

function printBanner(base: string, secrets: Secrets, model: string) {
  console.log(`
Dev API key: ${secrets.apiKey}
Admin token: ${secrets.adminToken}
Console:     ${base}/console (sign in with the dev API key); operators: ${base}/console/admin (admin token)

curl ${base}/v1/chat/completions \\
  -H "Authorization: Bearer ${secrets.apiKey}" -H "Content-Type: application/json" \\
  -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello!"}], "stream": true}'

node --input-type=module -e '
import OpenAI from "openai";
const client = new OpenAI({ baseURL: "${base}/v1", apiKey: "${secrets.apiKey}" });
const r = await client.chat.completions.create({ model: "${model}", messages: [{ role: "user", content: "Hello!" }] });
console.log(r.choices[0].message.content, r.usage);'
`);
  console.log(`moe-edge stack ready: worker ${base} backend http://127.0.0.1:${parsePort("BACKEND_PORT", 8788)} (Ctrl-C stops everything)`);
}

main().catch((err: unknown) => fail(err instanceof Error ? err.message : String(err)));
