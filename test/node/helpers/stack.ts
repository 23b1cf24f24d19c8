/**
 * Starts the real local stack exactly as `npm start` does (scripts/start.ts), on free ports with a
 * throwaway state dir, and collects the children's log lines for assertions.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePorts, spawnUntilReady, stopProcess } from "../../../scripts/lib/processes";

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

const root = resolve(import.meta.dirname, "../../..");

export async function startStack(models = "tiny,small"): Promise<Stack> {
  const [port, backendPort] = await freePorts(2);
  const stateDir = mkdtempSync(join(tmpdir(), "moe-edge-e2e-"));
  const secrets = {
    apiKey: `sk-test-${randomBytes(24).toString("hex")}`,
    adminToken: randomBytes(16).toString("hex"),
    backendToken: randomBytes(16).toString("hex"),
  };
  const logs: string[] = [];
  const { child } = await spawnUntilReady(resolve(root, "node_modules/.bin/tsx"), ["scripts/start.ts"], {
    cwd: root,
    env: {
      ...process.env,
      PORT: String(port),
      BACKEND_PORT: String(backendPort),
      DEV_STATE_DIR: stateDir,
      MODELS: models,
      DEV_API_KEY: secrets.apiKey,
      ADMIN_TOKEN: secrets.adminToken,
      BACKEND_TOKEN: secrets.backendToken,
      // Leave a core for workerd and the test process on small CI machines.
      BACKEND_THREADS: process.env.BACKEND_THREADS ?? "1",
    },
    ready: /stack ready/,
    timeoutMs: 280_000,
    label: "npm start",
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
    async stop() {
      await stopProcess(child, 15_000);
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
