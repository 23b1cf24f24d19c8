/**
 * The real local stack as `npm start` runs it (scripts/start.ts: backend replicas, wrangler dev, D1), on free
 * ports with a throwaway state dir, for tools that drive it from outside (npm run soak). Every launcher line
 * is kept, and a caller can wait for one (event-driven: the launcher's own lines say what happened).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { lineLog } from "./line-log";
import { freePorts, lineSplitter, portIsFree, stopProcess } from "./processes";

export interface LocalStack {
  base: string;
  backendPorts: number[];
  adminToken: string;
  metricsToken: string;
  /** The launcher's secrets.json (a backend started by hand joins with the same tokens). */
  secrets: Record<string, string>;
  /** DEV_STATE_DIR of this stack. */
  stateDir: string;
  lines: string[];
  /** The first launcher line at index >= `from` that matches `re`. */
  waitFor(re: RegExp, from?: number): Promise<RegExpMatchArray>;
  /** Current pid of each backend replica and of the worker (from the launcher's ready/restarted lines). */
  backendPid(port: number): number;
  workerPid(): number;
  stop(): Promise<void>;
}

const root = resolve(import.meta.dirname, "../..");

export async function startLocalStack(o: {
  replicas: number;
  models: string;
  threads: string;
  timeoutMs: number;
  /** More environment for npm start, e.g. the worker vars it passes through (scripts/lib/launch-config.ts). */
  env?: Record<string, string>;
}): Promise<LocalStack> {
  // Replicas take BACKEND_PORT + i: look for a free port whose next ones are free too.
  let port = 0;
  let first = 0;
  for (let tries = 0; ; tries++) {
    [port, first] = (await freePorts(2)) as [number, number];
    const rest = Array.from({ length: o.replicas - 1 }, (_, i) => first + 1 + i);
    if (
      !rest.includes(port) &&
      rest.every((p) => p <= 65535) &&
      (await Promise.all(rest.map((p) => portIsFree(p)))).every(Boolean)
    )
      break;
    if (tries > 20) throw new Error(`no run of ${o.replicas} free ports found`);
  }
  const stateDir = mkdtempSync(join(tmpdir(), "moe-edge-soak-"));
  // node --import tsx: the child is the launcher itself, so SIGTERM reaches its shutdown handler.
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "scripts/start.ts"], {
    cwd: root,
    env: {
      ...process.env,
      PORT: String(port),
      BACKEND_PORT: String(first),
      BACKEND_REPLICAS: String(o.replicas),
      DEV_STATE_DIR: stateDir,
      MODELS: o.models,
      BACKEND_THREADS: o.threads,
      // The backends' audit lines are read back from the launcher's output.
      QUIET_LOGS: "0",
      ...o.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const { lines, push, waitFor } = lineLog();
  const onLine = lineSplitter(push);
  child.stdout!.on("data", onLine());
  child.stderr!.on("data", onLine());
  const stop = async () => {
    await stopProcess(child, 20_000);
    rmSync(stateDir, { recursive: true, force: true });
  };
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) =>
      reject(new Error(`npm start exited (${code}) before the stack was ready:\n${lines.slice(-15).join("\n")}`)),
    ),
  );
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the stack was not ready within ${o.timeoutMs} ms`)), o.timeoutMs);
  });
  try {
    await Promise.race([waitFor(/moe-edge stack ready/), exited, timeout]);
  } catch (e) {
    await stop();
    throw e;
  } finally {
    clearTimeout(timer);
  }
  exited.catch(() => undefined);
  const secrets = JSON.parse(readFileSync(join(stateDir, "secrets.json"), "utf8")) as Record<string, string> & {
    adminToken: string;
    metricsToken: string;
  };
  const backendPorts = Array.from({ length: o.replicas }, (_, i) => first + i);
  /** The pid in the last "ready (pid N)" or "restarted (pid N)" line about `label`. */
  const lastPid = (label: string) => {
    const re = new RegExp(`${label} (?:ready|restarted) \\(pid (\\d+)\\)`);
    for (let i = lines.length - 1; i >= 0; i--) {
      const m = lines[i]!.match(re);
      if (m) return Number(m[1]);
    }
    throw new Error(`no pid seen for ${label}`);
  };
  return {
    base: `http://127.0.0.1:${port}`,
    backendPorts,
    adminToken: secrets.adminToken,
    metricsToken: secrets.metricsToken,
    secrets,
    stateDir,
    lines,
    waitFor,
    backendPid: (p) => lastPid(`backend :${p}`),
    workerPid: () => lastPid(`worker :${port}`),
    stop,
  };
}

/** Resident set of a process, in MB (0 if it is gone). */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Resident set of every process in a process group, in MB, by command name (the worker's group:
 * wrangler's two Node processes as "node", and "workerd").
 */
export function groupRssMb(pgid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const { pid, comm } of groupProcesses(pgid)) out[comm] = Math.round((out[comm] ?? 0) + rssMb(pid));
  return out;
}

/** The processes of a process group, with their command names (e.g. the worker's "workerd"). */
export function groupProcesses(pgid: number): Array<{ pid: number; comm: string }> {
  const out: Array<{ pid: number; comm: string }> = [];
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      // /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may contain spaces, so split after ") ".
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.split(") ")[1]!.split(" ");
      if (Number(fields[2]) !== pgid) continue;
      out.push({ pid: Number(pid), comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) });
    } catch {
      // the process left meanwhile
    }
  }
  return out;
}
