/** `npm start`'s configuration: every environment variable and flag it reads, in one place. */
import { resolve } from "node:path";
import { CHECKED_SECRETS, MIN_SECRET_LENGTH } from "../../worker/config";
import { parseCli } from "./cli";

export const START_USAGE = `usage: npm start [-- --help]

Starts the whole stack locally, offline: dev models (built if missing) -> D1 migrations -> backend
replica(s) -> worker (wrangler dev) -> dev API key. A backend or the worker that dies is restarted
with backoff, and the launcher says so in one line. Ctrl-C stops everything.

Environment:
  PORT=8787              worker port
  BACKEND_PORT=8788      first backend port (replica i listens on BACKEND_PORT + i)
  BACKEND_REPLICAS=1     backend processes, each serving every model (the worker routes between them)
  BACKEND_THREADS=N      ONNX Runtime intra-op threads per backend (default: all cores)
  MODELS=tiny,small,medium  dev models to serve
  DEV_STATE_DIR=.dev     secrets, local D1/DO/KV state, backend usage journals (journal/<port>)
  DEV_API_KEY, ADMIN_TOKEN, BACKEND_TOKEN, METRICS_TOKEN, USAGE_TOKEN, REGISTRY_TOKEN
                         default: generated once, kept in DEV_STATE_DIR
  QUIET_LOGS=1           hide the children's log lines (restart notices are still printed)
  STALL_TIMEOUT_MS, FIRST_TOKEN_TIMEOUT_MS, FAULTS   passed to the worker as vars (wrangler.toml's otherwise;
                         FAULTS=1 opens /internal/faults for npm run soak: never in production)`;

/** Worker vars taken from npm start's environment when set (the soak shortens the stall bounds, arms faults). */
const WORKER_VARS = ["STALL_TIMEOUT_MS", "FIRST_TOKEN_TIMEOUT_MS", "FAULTS"] as const;

export interface LaunchConfig {
  root: string;
  port: number;
  /** One per backend replica. */
  backendPorts: number[];
  backendThreads: string | undefined;
  models: string[];
  stateDir: string;
  quietLogs: boolean;
  /** Vars for the worker beyond wrangler.toml's (WORKER_VARS present in the environment). */
  workerVars: Record<string, string>;
  /** Overrides of the secrets kept in stateDir/secrets.json. */
  secrets: {
    apiKey?: string;
    adminToken?: string;
    backendToken?: string;
    metricsToken?: string;
    usageToken?: string;
    registryToken?: string;
  };
}

/** Throws an Error with a one-line message on a bad setting; `--help` and unknown flags exit in parseCli. */
export function parseLaunchConfig(root: string, argv: string[], env: NodeJS.ProcessEnv): LaunchConfig {
  parseCli("npm start", argv, { usage: START_USAGE, options: {} });
  const port = envPort(env, "PORT", 8787);
  const first = envPort(env, "BACKEND_PORT", 8788);
  const replicas = envInt(env, "BACKEND_REPLICAS", 1, 1, 16);
  const backendPorts = Array.from({ length: replicas }, (_, i) => first + i);
  if (backendPorts.at(-1)! > 65535)
    throw new Error(`BACKEND_PORT=${first} with BACKEND_REPLICAS=${replicas} runs past port 65535`);
  if (backendPorts.includes(port)) {
    throw new Error(
      replicas === 1
        ? `PORT and BACKEND_PORT are both ${port}; pick two different ports`
        : `PORT ${port} is one of the backend ports ${first}-${backendPorts.at(-1)}`,
    );
  }
  const models = (env.MODELS ?? "tiny,small,medium")
    .split(",")
    .map((m) => m.trim())
    .filter(Boolean);
  if (models.length === 0) throw new Error("MODELS is empty");
  // The worker refuses to serve with a short one (worker/config.ts): say so here, before anything starts.
  for (const name of CHECKED_SECRETS) {
    const v = nonEmpty(env[name]);
    if (v !== undefined && v.length < MIN_SECRET_LENGTH)
      throw new Error(`${name} must be at least ${MIN_SECRET_LENGTH} characters (unset it to have one generated)`);
  }
  return {
    root,
    port,
    backendPorts,
    backendThreads: nonEmpty(env.BACKEND_THREADS),
    models,
    stateDir: resolve(root, env.DEV_STATE_DIR ?? ".dev"),
    quietLogs: env.QUIET_LOGS === "1",
    workerVars: Object.fromEntries(WORKER_VARS.flatMap((k) => (nonEmpty(env[k]) ? [[k, env[k]!]] : []))),
    secrets: {
      apiKey: nonEmpty(env.DEV_API_KEY),
      adminToken: nonEmpty(env.ADMIN_TOKEN),
      backendToken: nonEmpty(env.BACKEND_TOKEN),
      metricsToken: nonEmpty(env.METRICS_TOKEN),
      usageToken: nonEmpty(env.USAGE_TOKEN),
      registryToken: nonEmpty(env.REGISTRY_TOKEN),
    },
  };
}

const nonEmpty = (v: string | undefined) => (v === undefined || v === "" ? undefined : v);

function envInt(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`${name}=${raw} must be an integer from ${min} to ${max}`);
  return n;
}

function envPort(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${name}=${raw} is not a valid port`);
  return port;
}
