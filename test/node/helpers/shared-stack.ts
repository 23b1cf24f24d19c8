/**
 * One `npm start` stack shared by the test files that only send it requests (each with keys of its own),
 * so a run pays for one start instead of one per file. The first file that asks starts it, detached, with
 * its output in a log file; later files find it through a small JSON record; the node project's global
 * teardown stops it (global-setup.ts). Files that kill or restart parts of a stack start their own.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePorts } from "../../../scripts/lib/processes";
import { repoRoot, tsxBin } from "./paths";

export interface SharedStackRecord {
  pid: number;
  port: number;
  backendPort: number;
  apiKey: string;
  adminToken: string;
  backendToken: string;
  logFile: string;
}

const RECORD = "stack.json";

/** The stack recorded in `dir`, or a new one started there (models tiny and small, one backend thread). */
export async function sharedStack(dir: string): Promise<SharedStackRecord> {
  const recorded = join(dir, RECORD);
  if (existsSync(recorded)) return JSON.parse(readFileSync(recorded, "utf8")) as SharedStackRecord;
  mkdirSync(dir, { recursive: true });
  const [port, backendPort] = await freePorts(2);
  const secrets = {
    apiKey: `sk-test-${randomBytes(24).toString("hex")}`,
    adminToken: randomBytes(16).toString("hex"),
    backendToken: randomBytes(16).toString("hex"),
  };
  const logFile = join(dir, "launcher.log");
  const out = openSync(logFile, "a");
  // Detached, writing to a file: it outlives the test file that started it, until the global teardown.
  const child = spawn(tsxBin, ["scripts/start.ts"], {
    cwd: repoRoot,
    detached: true,
    stdio: ["ignore", out, out],
    env: {
      ...process.env,
      PORT: String(port),
      BACKEND_PORT: String(backendPort),
      DEV_STATE_DIR: join(dir, "state"),
      MODELS: "tiny,small",
      DEV_API_KEY: secrets.apiKey,
      ADMIN_TOKEN: secrets.adminToken,
      BACKEND_TOKEN: secrets.backendToken,
      // Leave a core for workerd and the test process on small CI machines.
      BACKEND_THREADS: process.env.BACKEND_THREADS ?? "1",
    },
  });
  child.unref();
  const exited = new Promise<number | null>((r) => child.once("exit", r));
  let code: number | null | undefined;
  void exited.then((c) => (code = c ?? -1));
  const deadline = Date.now() + 280_000;
  while (!/stack ready/.test(readFileSync(logFile, "utf8"))) {
    if (code !== undefined) throw new Error(`npm start exited (${code}) before "stack ready":\n${tail(logFile)}`);
    if (Date.now() > deadline) {
      process.kill(-child.pid!, "SIGKILL");
      throw new Error(`npm start was not ready within 280 s:\n${tail(logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const record: SharedStackRecord = { pid: child.pid!, port, backendPort, ...secrets, logFile };
  writeFileSync(recorded, JSON.stringify(record));
  return record;
}

/** Stops the stack recorded in `dir`, if one was started: SIGTERM to the launcher, SIGKILL to its group after 20 s. */
export async function stopSharedStack(dir: string): Promise<void> {
  const recorded = join(dir, RECORD);
  if (!existsSync(recorded)) return;
  const { pid } = JSON.parse(readFileSync(recorded, "utf8")) as SharedStackRecord;
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  process.kill(pid, "SIGTERM");
  for (const until = Date.now() + 20_000; alive() && Date.now() < until; ) await new Promise((r) => setTimeout(r, 100));
  if (alive()) process.kill(-pid, "SIGKILL");
}

/** The launcher's output so far, one entry per line. */
export function logLines(logFile: string): string[] {
  return readFileSync(logFile, "utf8").split("\n").filter(Boolean);
}

function tail(file: string): string {
  return readFileSync(file, "utf8").split("\n").slice(-30).join("\n");
}
