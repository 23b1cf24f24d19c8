/**
 * `npm start` brings back what dies: kill -9 the backend, then the worker, and the launcher restarts
 * each with one line, after which the stack serves again. Waits on the launcher's lines, never on timers.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePorts, spawnUntilReady, stopProcess } from "../../scripts/lib/processes";
import type { ChildProcess } from "node:child_process";

const root = resolve(import.meta.dirname, "../..");

/** The launcher's output lines, and a way to wait for one that matches (already printed: at once). */
function lineLog() {
  const lines: string[] = [];
  const waiters: Array<{ re: RegExp; from: number; resolve: (m: RegExpMatchArray) => void }> = [];
  const find = (re: RegExp, from: number) => {
    for (const line of lines.slice(from)) {
      const m = line.match(re);
      if (m) return m;
    }
    return null;
  };
  const push = (line: string) => {
    lines.push(line);
    for (const w of [...waiters]) {
      const m = lines.length - 1 >= w.from ? line.match(w.re) : null;
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  /** The first line matching `re` at index >= `from`. */
  const waitFor = (re: RegExp, from = 0) =>
    new Promise<RegExpMatchArray>((resolve) => {
      const m = find(re, from);
      if (m) resolve(m);
      else waiters.push({ re, from, resolve });
    });
  return { lines, push, waitFor };
}

describe("npm start supervision", () => {
  let launcher: ChildProcess;
  let state: string;
  let port: number;
  let backendPort: number;
  let apiKey: string;
  const log = lineLog();

  beforeAll(async () => {
    [port, backendPort] = await freePorts(2);
    state = mkdtempSync(join(tmpdir(), "moe-edge-supervise-"));
    ({ child: launcher } = await spawnUntilReady(resolve(root, "node_modules/.bin/tsx"), ["scripts/start.ts"], {
      cwd: root,
      env: {
        ...process.env,
        PORT: String(port!),
        BACKEND_PORT: String(backendPort!),
        DEV_STATE_DIR: state,
        MODELS: "tiny",
        BACKEND_THREADS: "1",
        QUIET_LOGS: "1",
      },
      ready: /stack ready/,
      timeoutMs: 240_000,
      label: "npm start",
      echo: log.push,
    }));
    apiKey = (JSON.parse(readFileSync(join(state, "secrets.json"), "utf8")) as { apiKey: string }).apiKey;
  }, 300_000);

  afterAll(async () => {
    if (launcher) await stopProcess(launcher, 15_000);
    rmSync(state, { recursive: true, force: true });
  });

  const chat = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "mistral-tiny",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 3,
        temperature: 0,
      }),
    });
    expect(res.status).toBe(200);
    return (await res.json()) as { usage: { completion_tokens: number } };
  };

  it("the backend's usage journal lives under the launcher's state dir", async () => {
    await chat();
    const dir = join(state, "journal", String(backendPort));
    expect(existsSync(dir)).toBe(true);
    expect(readdirSync(dir).some((f) => /^seg-\d+\.jsonl$/.test(f))).toBe(true);
  });

  it("kill -9 of the backend: one restart line, then /health and chat work again", async () => {
    const from = log.lines.length;
    const pid = Number((await log.waitFor(new RegExp(`backend :${backendPort} ready \\(pid (\\d+)\\)`)))[1]);
    process.kill(pid, "SIGKILL");
    const exited = await log.waitFor(
      new RegExp(`npm start: backend :${backendPort} exited \\(SIGKILL\\) after [\\d.]+ s; restarting in [\\d.]+ s`),
      from,
    );
    expect(exited[0]).not.toContain("\n");
    const back = await log.waitFor(new RegExp(`npm start: backend :${backendPort} restarted \\(pid (\\d+)\\)`), from);
    expect(Number(back[1])).not.toBe(pid);
    expect((await fetch(`http://127.0.0.1:${backendPort}/health`)).status).toBe(200);
    expect((await chat()).usage.completion_tokens).toBeGreaterThan(0);
    // The launcher itself kept running and printed no stack trace.
    expect(launcher.exitCode).toBeNull();
    expect(log.lines.slice(from).some((l) => /^\s+at /.test(l))).toBe(false);
  });

  it("kill -9 of the worker (issue 14): restarted, and the same key still works", async () => {
    const from = log.lines.length;
    const pid = Number((await log.waitFor(new RegExp(`worker :${port} ready \\(pid (\\d+)\\)`)))[1]);
    process.kill(pid, "SIGKILL");
    await log.waitFor(new RegExp(`npm start: worker :${port} exited \\(SIGKILL\\)`), from);
    await log.waitFor(new RegExp(`npm start: worker :${port} restarted \\(pid \\d+\\)`), from);
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    expect((await chat()).usage.completion_tokens).toBeGreaterThan(0);
  });

  it("Ctrl-C after restarts still stops everything with exit 0", async () => {
    const exited = new Promise<number | null>((r) => launcher.once("exit", (code) => r(code)));
    launcher.kill("SIGINT");
    expect(await exited).toBe(0);
  });
});
