/** `npm start`'s launcher: clear failures, and Ctrl-C leaves nothing running. */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { freePorts, portIsFree, spawnUntilReady } from "../../scripts/lib/processes";

const root = resolve(import.meta.dirname, "../..");
const tsx = resolve(root, "node_modules/.bin/tsx");

describe("npm start launcher", () => {
  it("a busy port is a one-line error and exit 1, not a hang", async () => {
    const blocker = createServer();
    const port = await new Promise<number>((r) =>
      blocker.listen(0, "127.0.0.1", () => r((blocker.address() as { port: number }).port)),
    );
    try {
      const res = spawnSync(tsx, ["scripts/start.ts"], {
        cwd: root,
        env: { ...process.env, PORT: String(port) },
        encoding: "utf8",
        timeout: 60_000,
      });
      expect(res.status).toBe(1);
      expect(res.stderr).toMatch(new RegExp(`port ${port} \\(PORT\\) is already in use`));
      expect(res.stderr).not.toMatch(/\n\s+at /); // no stack trace
    } finally {
      blocker.close();
    }
  });

  it("a bad port setting is a clear error", () => {
    const res = spawnSync(tsx, ["scripts/start.ts"], {
      cwd: root,
      env: { ...process.env, BACKEND_PORT: "nope" },
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/BACKEND_PORT=nope is not a valid port/);
  });

  it("the same port for the worker and the backend is refused up front", () => {
    const res = spawnSync(tsx, ["scripts/start.ts"], {
      cwd: root,
      env: { ...process.env, PORT: "18999", BACKEND_PORT: "18999" },
      encoding: "utf8",
      timeout: 60_000,
    });
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
    const [port, backendPort] = await freePorts(2);
    const state = mkdtempSync(join(tmpdir(), "moe-edge-launcher-"));
    try {
      const { child } = await spawnUntilReady(tsx, ["scripts/start.ts"], {
        cwd: root,
        env: {
          ...process.env,
          PORT: String(port),
          BACKEND_PORT: String(backendPort),
          DEV_STATE_DIR: state,
          MODELS: "tiny",
          BACKEND_THREADS: "1",
          QUIET_LOGS: "1",
        },
        ready: /stack ready/,
        timeoutMs: 240_000,
        label: "npm start",
      });
      expect(await portIsFree(port)).toBe(false);
      expect(await portIsFree(backendPort)).toBe(false);
      // Only the tiers whose model is served are configured (MODELS=tiny): no tier that would fail later.
      const { apiKey } = JSON.parse(readFileSync(join(state, "secrets.json"), "utf8")) as { apiKey: string };
      const models = (await (
        await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: `Bearer ${apiKey}` } })
      ).json()) as { data: { id: string }[] };
      expect(models.data.map((m) => m.id)).toEqual(["mistral-tiny"]);
      const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
      child.kill("SIGINT");
      expect(await exited).toBe(0);
      for (let i = 0; i < 40 && !((await portIsFree(port)) && (await portIsFree(backendPort))); i++)
        await new Promise((r) => setTimeout(r, 250));
      expect(await portIsFree(port)).toBe(true);
      expect(await portIsFree(backendPort)).toBe(true);
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  }, 300_000);
});
