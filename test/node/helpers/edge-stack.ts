/**
 * The fixture of e2e-worker.test.ts: the worker under wrangler's unstable_startWorker (workerd, miniflare
 * D1/DO/Queues/Cache) in front of a real backend process (ONNX Runtime, dev models), a key made through
 * the admin API, the backend's audit lines as events, and plain-HTTP helpers. Its state is exported as
 * live bindings, set by useEdgeStack()'s hooks.
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { EventEmitter } from "node:events";
import { afterAll, beforeAll, expect } from "vitest";
import { applyLocalMigrations, startLocalWorker, type LocalWorker } from "../../../scripts/lib/local-worker";
import { freePort, lineSplitter, spawnUntilReady, stopProcess } from "../../../scripts/lib/processes";
import { repoRoot as root } from "./paths";

export const haveModels = ["tiny", "small"].every((m) => existsSync(resolve(root, "models/dev", m, "model.json")));
if (!haveModels) console.warn("e2e-worker: models/dev/{tiny,small} missing (run `npm run models`); skipping");

export const backendToken = randomBytes(16).toString("hex");
const adminToken = randomBytes(16).toString("hex");

let backend: ChildProcess | undefined;
export let backendUrl = "";
let worker: LocalWorker | undefined;
export let base = "";
let stateDir = "";
export let apiKey = "";

export type Json = Record<string, any>;

/** The backend's audit lines ({"event":"generate",...}, one per finished generation), as events. */
export const generated: Json[] = [];
const generatedEvents = new EventEmitter();

/** Resolves with the first audit line (seen so far or to come) that matches: an event, not a timed wait. */
export function backendFinished(match: (line: Json) => boolean): Promise<Json> {
  const seen = generated.find(match);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve) => {
    const on = (line: Json) => {
      if (!match(line)) return;
      generatedEvents.off("line", on);
      resolve(line);
    };
    generatedEvents.on("line", on);
  });
}

/** Polls a condition until it holds (no deadline of its own: the test's timeout bounds it). */
export async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function post(path: string, body: unknown, init: RequestInit = {}, key = apiKey): Promise<Response> {
  return fetch(`${base}${path}`, {
    method: "POST",
    ...init,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...(init.headers ?? {}) },
    body: JSON.stringify(body),
  });
}

export async function newKey(name: string): Promise<string> {
  return (await newKeyRow(name)).key;
}

export async function newKeyRow(
  name: string,
  monthlyBudgetMicros = 1_000_000_000,
): Promise<{ id: string; key: string }> {
  const res = await fetch(`${base}/v1/admin/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({
      name,
      tiers: ["mistral-tiny", "mistral-small", "mistral-embed"],
      rpm: 10_000,
      tpm: 10_000_000,
      monthly_budget_micros: monthlyBudgetMicros,
    }),
  });
  expect(res.status, await res.clone().text()).toBeLessThan(300);
  return (await res.json()) as { id: string; key: string };
}

export async function requestRecords(keyId: string): Promise<Json[]> {
  const res = await fetch(`${base}/v1/admin/usage/requests?key_id=${keyId}`, {
    headers: { authorization: `Bearer ${adminToken}` },
  });
  return ((await res.json()) as { data: Json[] }).data;
}

/** Reads an SSE response to the end; returns its data payloads. */
export async function readSse(res: Response): Promise<(Json | "[DONE]")[]> {
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((f) => f.startsWith("data: "))
    .map((f) => f.slice(6))
    .map((d) => (d === "[DONE]" ? "[DONE]" : JSON.parse(d)));
}

export async function usage(key: string): Promise<Json[]> {
  const res = await fetch(`${base}/v1/usage`, { headers: { authorization: `Bearer ${key}` } });
  return ((await res.json()) as { data: Json[] }).data;
}

export async function backendMetric(name: string, labels: string): Promise<number> {
  const text = await (
    await fetch(`${backendUrl}/metrics`, { headers: { authorization: `Bearer ${backendToken}` } })
  ).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

/** Registers the file's hooks: the backend and the worker start before its tests and stop after. */
export function useEdgeStack(): void {
  beforeAll(async () => {
    if (!haveModels) return;
    // D1 schema: the same migrations `npm start` applies, into the state dir the worker then uses; meanwhile
    // the backend loads.
    stateDir = mkdtempSync(join(tmpdir(), "moe-edge-e2e-worker-"));
    const migrated = applyLocalMigrations(root, stateDir);
    migrated.catch(() => {}); // awaited below
    const backendPort = await freePort();
    backendUrl = `http://127.0.0.1:${backendPort}`;
    const started = await spawnUntilReady(
      resolve(root, "node_modules/.bin/tsx"),
      [
        "gpu-backend/main.ts",
        "--model",
        "models/dev/tiny",
        "--model",
        "models/dev/small",
        "--port",
        String(backendPort),
        "--token",
        backendToken,
        "--threads",
        "1",
      ],
      { cwd: root, env: process.env, ready: /backend ready/, timeoutMs: 240_000, label: "backend" },
    );
    backend = started.child;
    const onLine = lineSplitter((line) => {
      if (!line.startsWith('{"event":"generate"')) return;
      const ev = JSON.parse(line) as Json;
      generated.push(ev);
      generatedEvents.emit("line", ev);
    });
    backend.stdout!.on("data", onLine());

    await migrated;

    const tiers = {
      "mistral-tiny": {
        backends: [backendUrl],
        backend_model: "tiny",
        context_window: 4096,
        price: { input: 140000, cached_input: 14000, output: 420000 },
      },
      "mistral-small": {
        backends: [backendUrl],
        backend_model: "small",
        context_window: 4096,
        price: { input: 600000, cached_input: 60000, output: 1800000 },
      },
      "mistral-embed": {
        backends: [backendUrl],
        backend_model: "small",
        context_window: 4096,
        kind: "embedding",
        price: { input: 100000, cached_input: 100000, output: 0 },
      },
    };
    worker = await startLocalWorker({ root, persistDir: stateDir, tiers, backendToken, adminToken });
    base = worker.url;
    apiKey = await newKey("e2e-worker");
  }, 300_000);

  afterAll(async () => {
    await worker?.dispose();
    if (backend) await stopProcess(backend);
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });
}
