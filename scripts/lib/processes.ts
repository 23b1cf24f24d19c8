/** Child-process helpers shared by the launcher, benchmarks and end-to-end tests. */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { createServer, type Server } from "node:net";

export interface Started {
  child: ChildProcess;
  /** The first line matching the ready pattern. */
  readyLine: string;
}

/** Stops a child that failed to get ready: its whole process group when it was spawned detached. */
function abandon(child: ChildProcess, detached: boolean | undefined): void {
  if (detached && child.pid) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  } else child.kill("SIGTERM");
}

/** Spawns a process and resolves when a stdout/stderr line matches `ready`; rejects on exit or timeout. */
export function spawnUntilReady(
  cmd: string,
  args: string[],
  opts: SpawnOptions & {
    ready: RegExp;
    timeoutMs: number;
    label: string;
    echo?: (line: string) => void;
    onSpawn?: (child: ChildProcess) => void;
  },
): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
    opts.onSpawn?.(child);
    const tail: string[] = [];
    let done = false;
    const finish = (err: Error | null, line = "") => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        abandon(child, opts.detached);
        reject(err);
      } else resolve({ child, readyLine: line });
    };
    const timer = setTimeout(
      () => finish(new Error(`${opts.label} did not become ready within ${opts.timeoutMs} ms:\n${tail.join("\n")}`)),
      opts.timeoutMs,
    );
    const onData = lineSplitter((line) => {
      tail.push(line);
      if (tail.length > 30) tail.shift();
      opts.echo?.(line);
      if (!done && opts.ready.test(line)) finish(null, line);
    });
    child.stdout!.on("data", onData());
    child.stderr!.on("data", onData());
    child.on("exit", (code, signal) =>
      finish(new Error(`${opts.label} exited (${signal ?? code}) before it was ready:\n${tail.join("\n")}`)),
    );
  });
}

/**
 * Returns a factory of chunk handlers that call `onLine` once per complete line: a pipe may deliver
 * a line in several chunks, and log consumers (tests reading JSON lines) need it whole.
 */
export function lineSplitter(onLine: (line: string) => void): () => (buf: Buffer) => void {
  return () => {
    let partial = "";
    return (buf: Buffer) => {
      const parts = (partial + buf.toString()).split(/\r?\n/);
      partial = parts.pop() ?? "";
      for (const line of parts) if (line) onLine(line);
    };
  };
}

/** True when nothing listens on host:port. */
export function portIsFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/**
 * `n` distinct free ports. All listeners stay open until every port is picked: closing one before
 * asking for the next lets the OS hand the same port out twice.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Server>((resolve, reject) => {
          const srv = createServer();
          srv.once("error", reject);
          srv.listen(0, "127.0.0.1", () => resolve(srv));
        }),
    ),
  );
  const ports = servers.map((srv) => {
    const addr = srv.address();
    return typeof addr === "object" && addr ? addr.port : 0;
  });
  await Promise.all(servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
  return ports;
}

/** One ephemeral free port. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0];
}

/** SIGTERM, then SIGKILL after `graceMs`. Resolves when the process is gone. */
export function stopProcess(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** Spawns a process and resolves once `url` answers 200; rejects if it exits first or on timeout. */
export async function spawnUntilHttpReady(
  cmd: string,
  args: string[],
  opts: SpawnOptions & {
    url: string;
    timeoutMs: number;
    label: string;
    isOurs?: (res: Response) => boolean;
    onSpawn?: (child: ChildProcess) => void;
  },
): Promise<ChildProcess> {
  const child = spawn(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
  opts.onSpawn?.(child);
  const tail: string[] = [];
  const collect = (buf: Buffer) => {
    tail.push(...buf.toString().split(/\r?\n/).filter(Boolean));
    tail.splice(0, Math.max(0, tail.length - 30));
  };
  child.stdout!.on("data", collect);
  child.stderr!.on("data", collect);
  const deadline = Date.now() + opts.timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      abandon(child, opts.detached);
      throw new Error(
        `${opts.label} exited (${child.signalCode ?? child.exitCode}) before it was ready:\n${tail.join("\n")}`,
      );
    }
    const ok = await fetch(opts.url, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.ok && (opts.isOurs?.(r) ?? true),
      () => false,
    );
    if (ok) {
      child.stdout!.off("data", collect);
      child.stderr!.off("data", collect);
      return child;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  abandon(child, opts.detached);
  throw new Error(`${opts.label} did not become ready within ${opts.timeoutMs} ms:\n${tail.join("\n")}`);
}
