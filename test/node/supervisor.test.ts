/**
 * The launcher's restart policy (scripts/lib/supervisor.ts) on fake children and vitest's fake clock:
 * exponential backoff, its reset after a healthy run, one line per event, and giving up after repeated
 * failed starts. (launcher-supervision.test.ts kills real processes.)
 */
import type { ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { afterEach, beforeEach, expect, it, vi } from "vitest";
import { Supervisor } from "../../scripts/lib/supervisor";

class FakeChild extends EventEmitter {
  // No pid: killGroup leaves real processes alone.
  readonly pid = undefined;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  die(signal: NodeJS.Signals): void {
    this.signalCode = signal;
    this.emit("exit", null, signal);
  }
}

const backoff = { baseMs: 500, maxMs: 4000, resetAfterMs: 60_000, maxFailedStarts: 3 };

function harness(outcomes: Array<"ok" | "fail">) {
  const lines: string[] = [];
  const children: FakeChild[] = [];
  const gaveUp: string[] = [];
  let calls = 0;
  const sup = new Supervisor({
    label: "backend :1",
    launch: async () => {
      const o = outcomes[calls++] ?? "ok";
      if (o === "fail") throw new Error("exited (code 1) before it was ready:\nsecond line");
      const c = new FakeChild();
      children.push(c);
      return c as unknown as ChildProcess;
    },
    say: (l) => lines.push(l),
    giveUp: (r) => gaveUp.push(r),
    backoff,
  });
  return { sup, lines, children, gaveUp, calls: () => calls };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

it("restarts a child that died, doubling the delay while it keeps dying, and resets after a healthy minute", async () => {
  const h = harness(["ok", "ok", "ok", "ok"]);
  await h.sup.start();
  h.children[0]!.die("SIGKILL");
  expect(h.lines).toEqual(["backend :1 exited (SIGKILL) after 0.0 s; restarting in 0.5 s"]);
  await vi.advanceTimersByTimeAsync(499);
  expect(h.calls()).toBe(1);
  await vi.advanceTimersByTimeAsync(1);
  expect(h.calls()).toBe(2);
  expect(h.lines.at(-1)).toBe("backend :1 restarted (pid undefined)");
  h.children[1]!.die("SIGSEGV");
  expect(h.lines.at(-1)).toMatch(/exited \(SIGSEGV\) after 0\.0 s; restarting in 1\.0 s$/);
  await vi.advanceTimersByTimeAsync(1000);
  // Healthy for a minute: the next crash starts the backoff over.
  await vi.advanceTimersByTimeAsync(60_000);
  h.children[2]!.die("SIGKILL");
  expect(h.lines.at(-1)).toMatch(/exited \(SIGKILL\) after 60\.0 s; restarting in 0\.5 s$/);
  expect(h.gaveUp).toEqual([]);
});

it("failed restarts back off too, one line each, and give up after maxFailedStarts in a row", async () => {
  const h = harness(["ok", "fail", "fail", "fail"]);
  await h.sup.start();
  h.children[0]!.die("SIGKILL");
  await vi.advanceTimersByTimeAsync(500);
  expect(h.lines.at(-1)).toBe("backend :1 failed to start (exited (code 1) before it was ready:); retrying in 1.0 s");
  await vi.advanceTimersByTimeAsync(1000);
  expect(h.lines.at(-1)).toMatch(/retrying in 2\.0 s$/);
  await vi.advanceTimersByTimeAsync(2000);
  expect(h.gaveUp).toEqual(["backend :1 failed to start 3 times in a row (exited (code 1) before it was ready:)"]);
  expect(h.lines.every((l) => !l.includes("\n"))).toBe(true);
});

it("stop() ends supervision: a death after it is not restarted", async () => {
  const h = harness(["ok", "ok"]);
  await h.sup.start();
  const stopped = h.sup.stop(1000);
  h.children[0]!.die("SIGTERM");
  await stopped;
  await vi.advanceTimersByTimeAsync(10_000);
  expect(h.calls()).toBe(1);
  expect(h.lines).toEqual([]);
});
