/**
 * `npm start` brings back what dies: kill -9 the backend, then the worker, and the launcher restarts
 * each with one line, after which the stack serves again. Waits on the launcher's lines, never on timers.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLauncher, TINY_STACK, type Launched } from "./helpers/launcher";
import { lineLog } from "../../scripts/lib/line-log";
import { exitOf } from "./helpers/process";

describe("npm start supervision", () => {
  let launched: Launched;
  let launcher: ChildProcess;
  let state: string;
  let port: number;
  let backendPort: number;
  let apiKey: string;
  const log = lineLog();

  beforeAll(async () => {
    launched = await startLauncher({ env: TINY_STACK, statePrefix: "moe-edge-supervise-", echo: log.push });
    ({ child: launcher, state, port, backendPort } = launched);
    ({ apiKey } = launched.secrets());
  }, 300_000);

  afterAll(async () => {
    await launched?.stop();
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

  it("kill -9 of the worker: restarted, and the same key still works", async () => {
    const from = log.lines.length;
    const pid = Number((await log.waitFor(new RegExp(`worker :${port} ready \\(pid (\\d+)\\)`)))[1]);
    process.kill(pid, "SIGKILL");
    await log.waitFor(new RegExp(`npm start: worker :${port} exited \\(SIGKILL\\)`), from);
    await log.waitFor(new RegExp(`npm start: worker :${port} restarted \\(pid \\d+\\)`), from);
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    expect((await chat()).usage.completion_tokens).toBeGreaterThan(0);
  });

  it("Ctrl-C after restarts still stops everything with exit 0", async () => {
    const exited = exitOf(launcher);
    launcher.kill("SIGINT");
    expect(await exited).toBe(0);
  });
});
