/**
 * Keeps one child process running for the launcher: when it dies it is started again after an
 * exponential backoff, and each event is one line. Children run in their own process group
 * (`detached`), so a crash of a process that has children of its own (wrangler → workerd) is cleaned up
 * whole before the restart, and a restart never finds its port held by an orphan.
 *
 * A live process is not a serving one: `wrangler dev` outlives its workerd runtime. With `probe`, a child
 * that fails `failures` probes in a row is killed (its whole group) and so restarted like a crash.
 */
import type { ChildProcess } from "node:child_process";

export interface Backoff {
  baseMs: number;
  maxMs: number;
  /** A child that ran this long before dying starts the backoff over (it was healthy, not crash-looping). */
  resetAfterMs: number;
  /** Give up after this many failed starts in a row. */
  maxFailedStarts: number;
}

export const DEFAULT_BACKOFF: Backoff = { baseMs: 500, maxMs: 15_000, resetAfterMs: 60_000, maxFailedStarts: 5 };

export interface SupervisorOptions {
  /** e.g. "backend :8788"; every notice starts with it. */
  label: string;
  /**
   * Spawns the child (detached: true), calls `onSpawn` with it at once, and resolves once it serves;
   * rejects if it dies first. onSpawn lets a stop during a slow start reach the child.
   */
  launch: (onSpawn: (child: ChildProcess) => void) => Promise<ChildProcess>;
  /** Called with each running child (log piping). */
  onChild?: (child: ChildProcess) => void;
  say: (line: string) => void;
  /** Restarts failed maxFailedStarts times in a row: the launcher stops everything. */
  giveUp: (reason: string) => void;
  backoff?: Backoff;
  /** Health probe of a running child; see the module doc. */
  probe?: Probe;
}

export interface Probe {
  /** Resolves true while the child serves; a rejection counts as a failure. */
  check: () => Promise<boolean>;
  intervalMs: number;
  /** Consecutive failed probes that mean "not serving". */
  failures: number;
}

export class Supervisor {
  child: ChildProcess | null = null;
  /** Spawned, not yet serving. */
  private starting: ChildProcess | null = null;
  restarts = 0;
  private stopping = false;
  private timer: NodeJS.Timeout | null = null;
  private attempt = 0;
  private readonly backoff: Backoff;

  constructor(private readonly o: SupervisorOptions) {
    this.backoff = o.backoff ?? DEFAULT_BACKOFF;
  }

  /** The first start: a failure here is the caller's (the launcher exits with its message). */
  async start(): Promise<ChildProcess> {
    return this.adopt(await this.launch());
  }

  private launch(): Promise<ChildProcess> {
    return this.o.launch((c) => (this.starting = c)).finally(() => (this.starting = null));
  }

  /** SIGTERM to the group, SIGKILL after `graceMs`; no restart afterwards. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    killGroup(this.starting, "SIGKILL");
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return killGroup(c, "SIGKILL");
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => killGroup(c, "SIGKILL"), graceMs);
      c.once("exit", () => {
        clearTimeout(t);
        killGroup(c, "SIGKILL"); // whatever the leader left behind
        resolve();
      });
      killGroup(c, "SIGTERM");
    });
  }

  /** Last resort on the launcher's own exit (synchronous). */
  killNow(): void {
    this.stopping = true;
    killGroup(this.starting, "SIGKILL");
    killGroup(this.child, "SIGKILL");
  }

  private adopt(child: ChildProcess): ChildProcess {
    if (this.stopping) {
      killGroup(child, "SIGKILL");
      return child;
    }
    this.child = child;
    this.o.onChild?.(child);
    const startedAt = Date.now();
    const stopProbe = this.watch(child);
    child.once("exit", (code, signal) => {
      stopProbe();
      killGroup(child, "SIGKILL");
      if (this.stopping) return;
      const upMs = Date.now() - startedAt;
      if (upMs >= this.backoff.resetAfterMs) this.attempt = 0;
      const delay = this.delay();
      this.o.say(
        `${this.o.label} exited (${signal ?? `code ${code}`}) after ${(upMs / 1000).toFixed(1)} s; restarting in ${(delay / 1000).toFixed(1)} s`,
      );
      this.schedule(delay, 0);
    });
    return child;
  }

  /** Probes `child` until it exits; kills its group after `failures` misses in a row. Returns the stop function. */
  private watch(child: ChildProcess): () => void {
    const p = this.o.probe;
    if (!p) return () => {};
    let missed = 0;
    let timer: NodeJS.Timeout | null = null;
    let done = false;
    const tick = async () => {
      const ok = await p.check().catch(() => false);
      if (done) return;
      missed = ok ? 0 : missed + 1;
      if (missed >= p.failures) {
        done = true;
        this.o.say(`${this.o.label} stopped serving (${missed} probes failed); killing it for a restart`);
        killGroup(child, "SIGKILL");
        return;
      }
      timer = setTimeout(() => void tick(), p.intervalMs);
    };
    timer = setTimeout(() => void tick(), p.intervalMs);
    return () => {
      done = true;
      if (timer) clearTimeout(timer);
    };
  }

  private delay(): number {
    return Math.min(this.backoff.maxMs, this.backoff.baseMs * 2 ** this.attempt++);
  }

  private schedule(delay: number, failedStarts: number): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.stopping) return;
      this.launch().then(
        (child) => {
          this.restarts++;
          this.adopt(child);
          if (!this.stopping) this.o.say(`${this.o.label} restarted (pid ${child.pid})`);
        },
        (e: unknown) => {
          if (this.stopping) return;
          const why = (e instanceof Error ? e.message : String(e)).split("\n")[0];
          if (failedStarts + 1 >= this.backoff.maxFailedStarts) {
            this.o.giveUp(`${this.o.label} failed to start ${failedStarts + 1} times in a row (${why})`);
            return;
          }
          const next = this.delay();
          this.o.say(`${this.o.label} failed to start (${why}); retrying in ${(next / 1000).toFixed(1)} s`);
          this.schedule(next, failedStarts + 1);
        },
      );
    }, delay);
  }
}

/** Signals the child's process group (it is its leader: spawned detached); ignores a group already gone. */
export function killGroup(child: ChildProcess | null, signal: NodeJS.Signals): void {
  if (!child?.pid) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: nothing left in the group.
  }
}
