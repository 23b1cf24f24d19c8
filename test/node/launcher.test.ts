/** `npm start`'s launcher: clear failures, and Ctrl-C leaves nothing running. */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { bannerText, nodeSnippet } from "../../scripts/lib/banner";
import { freePorts, portIsFree } from "../../scripts/lib/processes";
import { runLauncherSync, startLauncher, TINY_STACK } from "./helpers/launcher";
import { poll } from "./helpers/poll";
import { exitOf } from "./helpers/process";

describe("npm start launcher", () => {
  it("a busy port is a one-line error and exit 1, not a hang", async () => {
    const blocker = createServer();
    const port = await new Promise<number>((r) =>
      blocker.listen(0, "127.0.0.1", () => r((blocker.address() as { port: number }).port)),
    );
    try {
      const res = runLauncherSync({ PORT: String(port) });
      expect(res.status).toBe(1);
      expect(res.stderr).toMatch(new RegExp(`port ${port} \\(PORT\\) is already in use`));
      expect(res.stderr).not.toMatch(/\n\s+at /); // no stack trace
    } finally {
      blocker.close();
    }
  });

  it("a bad port setting is a clear error", () => {
    const res = runLauncherSync({ BACKEND_PORT: "nope" });
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/BACKEND_PORT=nope is not a valid port/);
  });

  it("a token the worker would refuse (under 32 characters) is refused up front", () => {
    const res = runLauncherSync({ ADMIN_TOKEN: "short-admin-token" });
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/ADMIN_TOKEN must be at least 32 characters/);
  });

  it("the printed Node snippet runs from any directory (built-in fetch, no packages) and sends max_tokens", async () => {
    const seen: { auth?: string; body?: Record<string, unknown> } = {};
    const server = createHttpServer((req, res) => {
      let raw = "";
      req.on("data", (d: Buffer) => (raw += d));
      req.on("end", () => {
        seen.auth = req.headers.authorization;
        seen.body = JSON.parse(raw) as Record<string, unknown>;
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ choices: [{ message: { content: "hi there" } }], usage: { cost_micros: 3 } }));
      });
    });
    const port = await new Promise<number>((r) =>
      server.listen(0, "127.0.0.1", () => r((server.address() as { port: number }).port)),
    );
    const dir = mkdtempSync(join(tmpdir(), "snippet-"));
    try {
      const base = `http://127.0.0.1:${port}`;
      const text = bannerText({
        base,
        apiKey: "sk-dev-abc",
        adminToken: "a".repeat(48),
        metricsToken: "m",
        model: "mistral-tiny",
        backendPorts: [1],
      });
      expect(text).toContain(nodeSnippet(base, "sk-dev-abc", "mistral-tiny"));
      expect(text).toMatch(/"max_tokens":64/);
      const run = spawn("bash", ["-c", nodeSnippet(base, "sk-dev-abc", "mistral-tiny")], { cwd: dir });
      let out = "";
      let err = "";
      run.stdout.on("data", (d: Buffer) => (out += d));
      run.stderr.on("data", (d: Buffer) => (err += d));
      const code = await new Promise<number | null>((r) => run.on("close", r));
      expect(err).toBe("");
      expect(code).toBe(0);
      expect(out).toContain("hi there");
      expect(seen.auth).toBe("Bearer sk-dev-abc");
      expect(seen.body).toMatchObject({ model: "mistral-tiny", max_tokens: 64 });
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the same port for the worker and the backend is refused up front", () => {
    const res = runLauncherSync({ PORT: "18999", BACKEND_PORT: "18999" });
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/PORT and BACKEND_PORT are both 18999/);
  });

  it("freePorts hands out distinct ports (two sequential freePort calls once collided in CI)", async () => {
    for (let i = 0; i < 20; i++) {
      const ports = await freePorts(4);
      expect(new Set(ports).size).toBe(4);
    }
  });

  it("Ctrl-C (SIGINT) stops the backend and the worker", async () => {
    const launched = await startLauncher({ env: TINY_STACK, statePrefix: "moe-edge-launcher-" });
    const { child, port, backendPort } = launched;
    try {
      expect(await portIsFree(port)).toBe(false);
      expect(await portIsFree(backendPort)).toBe(false);
      // Only the tiers whose model is served are configured (MODELS=tiny): no tier that would fail later.
      const { apiKey } = launched.secrets();
      const models = (await (
        await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: `Bearer ${apiKey}` } })
      ).json()) as { data: { id: string }[] };
      expect(models.data.map((m) => m.id)).toEqual(["mistral-tiny"]);
      const exited = exitOf(child);
      child.kill("SIGINT");
      expect(await exited).toBe(0);
      await poll(
        async () => (await portIsFree(port)) && (await portIsFree(backendPort)),
        (free) => free,
        { tries: 41, everyMs: 250 },
      );
      expect(await portIsFree(port)).toBe(true);
      expect(await portIsFree(backendPort)).toBe(true);
    } finally {
      await launched.stop();
    }
  }, 300_000);
});
