/**
 * `npm start` (scripts/start.ts) as the tests run it: on two free ports with a throwaway state dir,
 * resolved once it prints "stack ready".
 */
import { spawnSync, type ChildProcess, type SpawnSyncReturns } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts, spawnUntilReady, stopProcess } from "../../../scripts/lib/processes";
import { repoRoot, tsxBin } from "./paths";

/** The tiny model on one backend thread, launcher lines only: the launcher tests' stack. */
export const TINY_STACK = { MODELS: "tiny", BACKEND_THREADS: "1", QUIET_LOGS: "1" };

export interface Launched {
  child: ChildProcess;
  port: number;
  backendPort: number;
  /** DEV_STATE_DIR: secrets.json, journal/<backendPort>/ … */
  state: string;
  /** What the launcher keeps in secrets.json. */
  secrets(): { apiKey: string; adminToken: string; backendToken: string };
  /** Stops the launcher (SIGTERM, SIGKILL after 15 s) and removes the state dir. */
  stop(): Promise<void>;
}

export async function startLauncher(o: {
  /** Added to the environment (after PORT, BACKEND_PORT and DEV_STATE_DIR). */
  env: Record<string, string>;
  /** The state dir's name prefix, under the OS temp dir. */
  statePrefix: string;
  timeoutMs?: number;
  /** Called with every output line of the launcher. */
  echo?: (line: string) => void;
}): Promise<Launched> {
  const [port, backendPort] = await freePorts(2);
  const state = mkdtempSync(join(tmpdir(), o.statePrefix));
  let child: ChildProcess;
  try {
    ({ child } = await spawnUntilReady(tsxBin, ["scripts/start.ts"], {
      cwd: repoRoot,
      env: {
        ...process.env,
        PORT: String(port),
        BACKEND_PORT: String(backendPort),
        DEV_STATE_DIR: state,
        ...o.env,
      },
      ready: /stack ready/,
      timeoutMs: o.timeoutMs ?? 240_000,
      label: "npm start",
      echo: o.echo,
    }));
  } catch (e) {
    rmSync(state, { recursive: true, force: true });
    throw e;
  }
  return {
    child,
    port,
    backendPort,
    state,
    secrets: () => JSON.parse(readFileSync(join(state, "secrets.json"), "utf8")) as ReturnType<Launched["secrets"]>,
    async stop() {
      await stopProcess(child, 15_000);
      rmSync(state, { recursive: true, force: true });
    },
  };
}

/** Runs `npm start` to its end (for settings it must refuse at once), with `env` added to the environment. */
export function runLauncherSync(env: Record<string, string>): SpawnSyncReturns<string> {
  return spawnSync(tsxBin, ["scripts/start.ts"], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
}
