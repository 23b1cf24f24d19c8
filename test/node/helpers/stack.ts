/**
 * The real local stack exactly as `npm start` runs it (scripts/start.ts), on free ports with a throwaway
 * state dir, and its log lines for assertions: the run's shared one, or a file's own.
 */
import { randomBytes } from "node:crypto";
import { inject } from "vitest";
import { startLauncher } from "./launcher";
import { logLines, sharedStack } from "./shared-stack";

export interface Stack {
  base: string;
  backendUrl: string;
  apiKey: string;
  adminToken: string;
  backendToken: string;
  /** Every log line the launcher printed so far ("[backend] ...", "[worker] ..."). */
  logs: string[];
  admin(path: string, init?: RequestInit): Promise<Response>;
  stop(): Promise<void>;
}

/**
 * The run's shared stack (models tiny and small; helpers/shared-stack.ts): for files that only send it
 * requests. Its stop() leaves it to the global teardown. Keys, budgets and limits a test depends on must be
 * its own (newKey through `admin`): the dev key `apiKey` is shared with the other files.
 */
export async function useSharedStack(): Promise<Stack> {
  const r = await sharedStack(inject("sharedStackDir"));
  const base = `http://127.0.0.1:${r.port}`;
  return {
    base,
    backendUrl: `http://127.0.0.1:${r.backendPort}`,
    apiKey: r.apiKey,
    adminToken: r.adminToken,
    backendToken: r.backendToken,
    get logs() {
      return logLines(r.logFile);
    },
    admin: adminFetch(base, r.adminToken),
    stop: async () => {},
  };
}

const adminFetch =
  (base: string, token: string) =>
  (path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(`${base}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...(init.headers ?? {}) },
    });

/** A stack of this file's own (for tests that kill, restart or reconfigure parts of it). */
export async function startStack(models = "tiny,small"): Promise<Stack> {
  const secrets = {
    apiKey: `sk-test-${randomBytes(24).toString("hex")}`,
    adminToken: randomBytes(16).toString("hex"),
    backendToken: randomBytes(16).toString("hex"),
  };
  const logs: string[] = [];
  const { port, backendPort, stop } = await startLauncher({
    statePrefix: "moe-edge-e2e-",
    env: {
      MODELS: models,
      DEV_API_KEY: secrets.apiKey,
      ADMIN_TOKEN: secrets.adminToken,
      BACKEND_TOKEN: secrets.backendToken,
      // Leave a core for workerd and the test process on small CI machines.
      BACKEND_THREADS: process.env.BACKEND_THREADS ?? "1",
    },
    timeoutMs: 280_000,
    echo: (line) => logs.push(line),
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    base,
    backendUrl: `http://127.0.0.1:${backendPort}`,
    ...secrets,
    logs,
    admin: adminFetch(base, secrets.adminToken),
    stop,
  };
}
