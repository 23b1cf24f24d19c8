/**
 * Elastic replicas through the real local stack (npm start, BACKEND_REPLICAS=2, wrangler dev, D1), one
 * stack for the file: a third backend joins with --register, serves, and leaves on SIGTERM; a rolling
 * restart of both replicas under streaming load fails nothing; kill -9 of workerd is survived, and so is
 * kill -9 of workerd and of a replica in the middle of a batch (the `openai` SDK's files and batches).
 * Every request id is reconciled against the ledger (scripts/lib/soak-ledger.ts).
 */
import { type ChildProcess, spawn } from "node:child_process";
import OpenAI, { toFile } from "openai";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { groupProcesses, type LocalStack, startLocalStack } from "../../scripts/lib/local-stack";
import { freePort, lineSplitter, stopProcess } from "../../scripts/lib/processes";
import { type Seen, soakRequest } from "../../scripts/lib/soak-client";
import { auditLines, type LedgerRecord, reconcile } from "../../scripts/lib/soak-ledger";
import { repoRoot } from "./helpers/paths";

let stack: LocalStack;
let apiKey = "";
let keyId = "";

const adminGet = async <T>(path: string): Promise<T> => {
  const res = await fetch(`${stack.base}${path}`, {
    headers: { authorization: `Bearer ${stack.adminToken}` },
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
};

interface Row {
  id: string;
  url: string;
  state: string;
  served: number;
  tiers: string[];
}
const replicas = () => adminGet<{ data: Row[] }>("/v1/admin/replicas").then((j) => j.data);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, ms: number, fn: () => Promise<T | undefined | false>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(250);
  }
}

let n = 0;
const request = (o: { maxTokens?: number; kind?: "normal" | "unstreamed"; onFirstToken?: () => void } = {}) =>
  soakRequest({
    onFirstToken: o.onFirstToken,
    base: stack.base,
    apiKey,
    kind: o.kind ?? "normal",
    maxTokens: o.maxTokens ?? 24,
    temperature: 0.8,
    seed: n,
    // Distinct first blocks: rendezvous spreads them over the replicas.
    prompt: `${n++} ${"harbour lamp tide rope ".repeat(1 + (n % 5))}`,
    abortAfterFrames: 0,
    slowReadMs: 0,
    hangMs: 90_000,
  });

/** `clients` loops of streamed requests until stop() resolves; returns everything they saw. */
function load(clients: number, maxTokens = 24) {
  const seen: Seen[] = [];
  let running = true;
  const loops = Array.from({ length: clients }, async () => {
    while (running) seen.push(await request({ maxTokens }));
  });
  return {
    seen,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return seen;
    },
  };
}

async function ledger(ids: string[]): Promise<Map<string, LedgerRecord[]>> {
  const out = new Map<string, LedgerRecord[]>();
  await until("a ledger row for every request", 60_000, async () => {
    for (const id of ids.filter((i) => !out.has(i))) {
      const j = await adminGet<{ data: LedgerRecord[] }>(`/v1/admin/usage/requests?request_id=${id}&limit=10`);
      if (j.data.length) out.set(id, j.data);
    }
    return out.size === ids.length;
  }).catch(() => undefined);
  // A late second row would be a double bill: read once more after the others landed.
  await sleep(1500);
  for (const id of ids) {
    const j = await adminGet<{ data: LedgerRecord[] }>(`/v1/admin/usage/requests?request_id=${id}&limit=10`);
    if (j.data.length) out.set(id, j.data);
  }
  return out;
}

async function expectExactLedger(seen: Seen[]) {
  const ids = seen.flatMap((s) => (s.requestId ? [s.requestId] : []));
  const rec = reconcile(seen, await ledger(ids), auditLines(stack.lines));
  expect(rec.lost, "request ids with no ledger row").toEqual([]);
  expect(rec.doubleBilled, "request ids billed twice or over").toEqual([]);
  expect(rec.underBilled).toEqual([]);
  expect(rec.checked).toBe(seen.length);
}

/** The launcher's own notices (restarts, probes), for a failure's message. */
const launcherLines = () =>
  stack.lines
    .filter((l) => l.startsWith("npm start:") || /registry|draining|restart/.test(l))
    .slice(-40)
    .join("\n");

const failures = (seen: Seen[]) =>
  seen.filter((s) => s.outcome !== "completed").map((s) => `${s.requestId} ${s.outcome} ${s.status} ${s.detail ?? ""}`);

beforeAll(async () => {
  stack = await startLocalStack({ replicas: 2, models: "tiny", threads: "1", timeoutMs: 420_000 });
  const res = await fetch(`${stack.base}/v1/admin/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "elastic", tiers: ["mistral-tiny"], rpm: 1_000_000, tpm: 1_000_000_000 }),
  });
  ({ key: apiKey, id: keyId } = (await res.json()) as { key: string; id: string });
  await until("both replicas registered ready", 30_000, async () => {
    const rows = await replicas();
    return rows.filter((r) => r.state === "ready").length === 2;
  });
}, 480_000);

afterAll(async () => {
  // ELASTIC_LINES=<file>: every launcher line, for a post-mortem.
  if (process.env.ELASTIC_LINES && stack) writeFileSync(process.env.ELASTIC_LINES, stack.lines.join("\n"));
  await stack?.stop();
});

describe("elastic replicas", () => {
  it("a third backend started by hand with --register is listed ready, serves traffic, and is gone within 30 s of SIGTERM while requests keep succeeding", async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const s = stack.secrets;
    const lines: string[] = [];
    const third: ChildProcess = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "gpu-backend/main.ts",
        ...["--model", "models/dev/tiny", "--port", String(port), "--threads", "1"],
        ...["--journal-dir", join(stack.stateDir, "journal", String(port))],
        ...["--usage-url", `${stack.base}/internal/usage`, "--register", stack.base],
      ],
      {
        cwd: repoRoot,
        env: {
          ...process.env,
          BACKEND_TOKEN: s.backendToken,
          USAGE_TOKEN: s.usageToken,
          REGISTRY_TOKEN: s.registryToken,
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const onLine = lineSplitter((l) => lines.push(l));
    third.stdout!.on("data", onLine());
    third.stderr!.on("data", onLine());
    try {
      const row = await until("the third replica listed ready", 120_000, async () =>
        (await replicas()).find((r) => r.url === url && r.state === "ready"),
      );
      expect(row.tiers).toContain("mistral-tiny");
      // It takes part of the traffic.
      const traffic: Seen[] = [];
      const served = await until("served > 0 on the third replica", 60_000, async () => {
        traffic.push(...(await Promise.all([request(), request(), request()])));
        return (await replicas()).find((r) => r.url === url && r.served > 0);
      });
      expect(served.served).toBeGreaterThan(0);

      const during = load(2);
      await sleep(500);
      const t0 = Date.now();
      third.kill("SIGTERM");
      await until("the third replica gone from the list", 30_000, async () =>
        (await replicas()).every((r) => r.url !== url),
      );
      const goneMs = Date.now() - t0;
      await sleep(1000);
      const seen = [...traffic, ...(await during.stop())];
      expect(goneMs).toBeLessThan(30_000);
      expect(failures(seen)).toEqual([]);
      await until("the third backend exited", 30_000, async () => third.exitCode !== null);
      expect(third.exitCode, lines.slice(-10).join("\n")).toBe(0);
      await expectExactLedger(seen);
    } finally {
      await stopProcess(third, 5000);
    }
  }, 360_000);

  it("a rolling restart of every replica under streaming load fails no request, cuts none, and bills each once", async () => {
    const traffic = load(4, 48);
    await sleep(1500);
    for (const port of stack.backendPorts) {
      const from = stack.lines.length;
      const pid = stack.backendPid(port);
      process.kill(pid, "SIGTERM");
      await stack.waitFor(new RegExp(`backend :${port} restarted \\(pid \\d+\\)`), from);
      await until(`:${port} registered ready again`, 30_000, async () =>
        (await replicas()).find((r) => r.url === `http://127.0.0.1:${port}` && r.state === "ready"),
      );
      await sleep(1000);
    }
    const seen = await traffic.stop();
    expect(seen.length).toBeGreaterThan(8);
    expect(failures(seen), launcherLines()).toEqual([]);
    await expectExactLedger(seen);
  }, 360_000);

  it("kill -9 of the workerd serving the worker port during live streams: serving again within 30 s, each stream billed once for what it received", async () => {
    const workerd = () => groupProcesses(stack.workerPid()).find((p) => p.comm === "workerd");
    const victim = workerd();
    expect(victim, "a workerd process in the worker's group").toBeDefined();
    // Killed once every stream has its first token (an event, not a timed wait: under load a stream can take
    // seconds to start).
    let started = 0;
    let allStarted!: () => void;
    const live = new Promise<void>((r) => (allStarted = r));
    const streams = Array.from({ length: 4 }, () =>
      request({ maxTokens: 400, onFirstToken: () => ++started === 4 && allStarted() }),
    );
    await live;
    const t0 = Date.now();
    process.kill(victim!.pid, "SIGKILL");
    const seen = await Promise.all(streams);
    await until("the worker serving again", 30_000, async () => {
      const r = await fetch(`${stack.base}/health`, { signal: AbortSignal.timeout(2000) });
      return r.ok;
    });
    const backMs = Date.now() - t0;
    expect(backMs).toBeLessThan(30_000);
    expect(workerd()?.pid).not.toBe(victim!.pid);
    // What each client received is covered by its row (the backends' journals deliver to the new worker).
    const ids = seen.flatMap((s) => (s.requestId ? [s.requestId] : []));
    expect(ids.length).toBe(4);
    const rows = await ledger(ids);
    for (const s of seen) {
      const recs = rows.get(s.requestId!) ?? [];
      expect(recs.length, `${s.requestId} (${s.outcome}) ledger rows`).toBe(1);
      const received = s.ttftMs === undefined ? 0 : s.gapsMs.length + 1;
      expect(recs[0]!.completion_tokens).toBeGreaterThanOrEqual(received);
    }
    // And it serves requests again, billed once each.
    const after = await Promise.all([request(), request()]);
    expect(failures(after)).toEqual([]);
    await expectExactLedger(after);
  }, 240_000);

  it("kill -9 of workerd and of a replica mid-batch: the batch ends completed, every line in exactly one file, each run line billed once", async () => {
    const openai = new OpenAI({ baseURL: `${stack.base}/v1`, apiKey, maxRetries: 0, timeout: 30_000 });
    const N = 12;
    const input = Array.from({ length: N }, (_, i) =>
      JSON.stringify({
        custom_id: `k${i}`,
        method: "POST",
        url: "/v1/chat/completions",
        body: {
          model: "mistral-tiny",
          messages: [{ role: "user", content: `Line ${i}: ${"harbour lamp tide ".repeat(1 + (i % 4))}` }],
          max_tokens: 64,
          temperature: 0,
        },
      }),
    );
    const file = await openai.files.create({
      file: await toFile(Buffer.from(`${input.join("\n")}\n`), "kill.jsonl"),
      purpose: "batch",
    });
    const batch = await openai.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const retrieve = () => openai.batches.retrieve(batch.id);
    // Mid-batch: three lines generated on the backends (their audit lines), the rest still to run.
    const generatedLines = () => auditLinesOf(batch.id).size;
    await until("three lines generated", 60_000, async () => generatedLines() >= 3);
    expect(generatedLines(), "the kill lands mid-batch").toBeLessThan(N);

    // The worker runtime: wrangler dev's workerd processes (the one serving the port and the one running
    // the worker, its queue and the queue's consumer), so the queue's pending messages die with it.
    const victims = groupProcesses(stack.workerPid()).filter((p) => p.comm === "workerd");
    expect(victims.length, "workerd processes in the worker's group").toBeGreaterThan(0);
    const port = stack.backendPorts[0]!;
    const from = stack.lines.length;
    const t0 = Date.now();
    for (const v of victims) process.kill(v.pid, "SIGKILL");
    process.kill(stack.backendPid(port), "SIGKILL");
    await stack.waitFor(new RegExp(`backend :${port} restarted \\(pid \\d+\\)`), from);
    await until("the worker serving again", 30_000, async () => {
      const r = await fetch(`${stack.base}/health`, { signal: AbortSignal.timeout(2000) });
      return r.ok;
    });
    const done = await until("the batch final", 90_000, async () => {
      const b = await retrieve();
      return ["completed", "failed", "expired", "cancelled"].includes(b.status) && b;
    });
    expect(Date.now() - t0, "final within a minute of the kill").toBeLessThan(60_000);
    expect(done.status, launcherLines()).toBe("completed");

    const read = async (id: string | null | undefined) =>
      id
        ? (await (await openai.files.content(id)).text())
            .split("\n")
            .filter(Boolean)
            .map((l) => JSON.parse(l) as BatchResultLine)
        : [];
    const out = await read(done.output_file_id);
    const errs = await read(done.error_file_id);
    // Every custom_id in exactly one of the two files, once.
    const ids = [...out, ...errs].map((l) => l.custom_id);
    expect([...ids].sort()).toEqual(input.map((_, i) => `k${i}`).sort());
    expect(done.request_counts).toEqual({ total: N, completed: out.length, failed: errs.length });
    for (const l of out) expect(l.response?.status_code).toBe(200);

    // The ledger: one row per line that reached a backend (its id `<batch>_l<line>`), none twice; a line
    // that succeeded is billed exactly the usage its output reports (greedy: a rerun of a line cut by the
    // kill generates the same tokens, and the two attempts' writes merge into the one row).
    const rows = await adminGet<{ data: LedgerRecord[] }>(`/v1/admin/usage/requests?key_id=${keyId}&limit=1000`);
    const batchRows = rows.data.filter((r) => r.request_id.startsWith(`${batch.id}_l`));
    const perId = new Map<string, LedgerRecord[]>();
    for (const r of batchRows) perId.set(r.request_id, [...(perId.get(r.request_id) ?? []), r]);
    expect(
      [...perId].filter(([, rs]) => rs.length > 1).map(([id]) => id),
      "ids billed twice",
    ).toEqual([]);
    for (const l of out) {
      const rs = perId.get(l.response!.request_id!) ?? [];
      expect(rs.length, `${l.custom_id} ledger rows`).toBe(1);
      expect(rs[0]!.completion_tokens, l.custom_id).toBe(l.response!.body.usage.completion_tokens);
    }
    // No row bills more than the backends generated (their audit lines, across the kill).
    const audit = auditLines(stack.lines);
    for (const r of batchRows) {
      const gen = audit.get(r.request_id);
      if (gen?.length)
        expect(r.completion_tokens, r.request_id).toBeLessThanOrEqual(Math.max(...gen.map((a) => a.completion_tokens)));
    }
  }, 240_000);
});

/** The backends' audit lines of a batch's lines, by ledger id. */
const auditLinesOf = (batchId: string) =>
  new Map([...auditLines(stack.lines)].filter(([id]) => id.startsWith(`${batchId}_l`)));

interface BatchResultLine {
  custom_id: string;
  response: { status_code: number; request_id: string | null; body: { usage: { completion_tokens: number } } } | null;
  error: { code: string } | null;
}
