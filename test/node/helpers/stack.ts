/**
 * Starts the real local stack exactly as `npm start` does (scripts/start.ts), on free ports with a
 * throwaway state dir, and collects the children's log lines for assertions.
 */
import { randomBytes } from "node:crypto";
import { startLauncher } from "./launcher";

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
    admin: (path, init = {}) =>
      fetch(`${base}${path}`, {
        ...init,
        headers: {
          authorization: `Bearer ${secrets.adminToken}`,
          "content-type": "application/json",
          ...(init.headers ?? {}),
        },
      }),
    stop,
  };
}
