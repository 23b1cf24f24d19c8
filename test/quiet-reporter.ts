/**
 * vitest's default reporter, minus the worker's structured log lines ({"level": ...}: one per request,
 * plus deliberate errors in failure tests) while their test passes. A failing test still prints them, after
 * its result, and LOG_REQUESTS=1 (vitest.config.ts) uses the plain default reporter, which prints them all.
 * Every other console line (skip reasons, measured figures) is printed as before.
 */
import type { RunnerTask, UserConsoleLog } from "vitest";
import { DefaultReporter, type TestResult } from "vitest/node";

const isWorkerLine = (line: string) => line.startsWith('{"level":');

/** The log with only the worker's lines (keep = true) or only the others; null when nothing is left. */
function part(log: UserConsoleLog, keep: boolean): UserConsoleLog | null {
  // vitest merges consecutive console calls of one test into one entry: filter line by line.
  const lines = log.content.split("\n").filter((l) => l !== "" && isWorkerLine(l) === keep);
  return lines.length ? { ...log, content: lines.join("\n") + "\n" } : null;
}

export default class QuietWorkerLogs extends DefaultReporter {
  override onUserConsoleLog(log: UserConsoleLog, taskState?: TestResult["state"]): void {
    const shown = taskState === "failed" ? log : part(log, false);
    if (shown) super.onUserConsoleLog(shown, taskState);
  }

  // Called for each failed test, suite and module: replay the worker lines held back while it ran.
  protected override logFailedTask(task: RunnerTask): void {
    super.logFailedTask(task);
    for (const log of task.logs ?? []) {
      const held = part(log, true);
      if (held) this.onUserConsoleLog(held, "failed");
    }
  }
}
