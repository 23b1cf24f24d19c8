/**
 * How much of the machine other processes used while a measurement ran: all CPUs' busy time from
 * /proc/stat, less the CPU time of this process and of its finished children (the llama.cpp tools it
 * ran), over wall time x CPUs. A benchmark on a shared machine
 * reports it beside its figures, since spinning thread pools (llama.cpp's barriers above all) slow down
 * far more than in proportion when another process holds a core. Linux only (null elsewhere).
 */
import { existsSync, readFileSync } from "node:fs";
import { cpus } from "node:os";

/** USER_HZ: /proc/stat counts in 1/100 s on every Linux build Node runs on. */
const TICKS_PER_S = 100;

function busySeconds(): number | null {
  if (!existsSync("/proc/stat")) return null;
  const f = readFileSync("/proc/stat", "utf8").split("\n", 1)[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal ...: everything but idle and iowait is busy.
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - f[3] - f[4]) / TICKS_PER_S;
}

/** utime + stime + cutime + cstime of this process (/proc/self/stat fields 14-17), seconds. */
function ownSeconds(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  // Fields after the parenthesised command name, which may itself contain spaces.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICKS_PER_S;
}

/** Runs `f`; `others` is the fraction of the machine's CPU time other processes used meanwhile (0..1). */
export async function withForeignLoad<T>(f: () => Promise<T>): Promise<{ value: T; others: number | null }> {
  const b0 = busySeconds();
  const o0 = b0 === null ? 0 : ownSeconds();
  const t0 = performance.now();
  const value = await f();
  const wall = (performance.now() - t0) / 1000;
  const b1 = busySeconds();
  if (b0 === null || b1 === null) return { value, others: null };
  const own = ownSeconds() - o0;
  return { value, others: Math.min(1, Math.max(0, (b1 - b0 - own) / (wall * cpus().length))) };
}
