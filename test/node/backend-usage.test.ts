/**
 * The backend as usage witness (issue 14), through real backend processes: one journaled record per
 * finished/cancelled request, durable before the `done` line, delivered to a local receiver, and
 * replayed exactly once after a kill -9. Waits are on stream events, receiver requests and log lines.
 */
import { readdir, readFile, symlink, unlink } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { UsageRecord, UsageStatusResponse } from "../../contract/usage";
import { parseGenerateEvent, type GenerateEvent } from "../../contract/wire";
import { devModel } from "./engine-helpers";
import { ids, metric, post, readEvents, readTokens, spawnBackend, streamText, type Backend } from "./helpers/backend";
import { tmpDirs } from "./helpers/tmp";
import { startReceiver, type Receiver } from "./helpers/usage-receiver";

const tmpJournal = tmpDirs("backend-journal-");

const USAGE_TOKEN = "usage-token-e2e";

async function journalRecords(dir: string, skip: string[] = []): Promise<UsageRecord[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".jsonl") && !skip.includes(f)).sort();
  const out: UsageRecord[] = [];
  for (const f of files)
    for (const l of (await readFile(path.join(dir, f), "utf8")).split("\n"))
      if (l) out.push(JSON.parse(l) as UsageRecord);
  return out;
}

const backendArgs = (dir: string, r: Receiver) => [
  "--model",
  devModel("tiny"),
  "--journal-dir",
  dir,
  "--usage-url",
  r.url,
  "--usage-retry-base-ms",
  "5",
  "--usage-retry-max-ms",
  "20",
];

describe("backend usage witness", () => {
  let r: Receiver;
  let b: Backend;
  let dir: string;
  beforeAll(async () => {
    r = await startReceiver(USAGE_TOKEN);
    dir = await tmpJournal();
    b = await spawnBackend(backendArgs(dir, r), { env: { USAGE_TOKEN } });
    await b.ready;
  });
  afterAll(async () => {
    b?.proc.kill("SIGKILL");
    await r?.close();
  });

  it("the record is in the journal before the done line arrives, then delivered with the worker's key id and tier", async () => {
    const res = await post(`${b.url}/v1/generate`, {
      model: "tiny",
      input_ids: ids(20),
      max_tokens: 4,
      request_id: "req_w1",
      key_id: "key_abc",
      tier: "mistral-tiny",
      cache_salt: "s",
    });
    const text = await streamText(res).until((t) => t.includes('"done"'));
    // The done line is out: the journal must already hold the record (fsync'd before it was written).
    const onDisk = (await journalRecords(dir)).find((x) => x.request_id === "req_w1");
    const done = text.trim().split("\n").map(parseGenerateEvent).pop() as Extract<GenerateEvent, { type: "done" }>;
    expect(onDisk).toMatchObject({
      kind: "generate",
      key_id: "key_abc",
      tier: "mistral-tiny",
      model: "tiny",
      finish_reason: done.finish_reason,
      ...done.usage,
    });
    expect(onDisk!.ended_at).toBeGreaterThanOrEqual(onDisk!.started_at);
    await r.until(() => r.received.some((x) => x.request_id === "req_w1"));
    expect(r.received.find((x) => x.request_id === "req_w1")).toEqual(onDisk);
    expect(r.auths.every((a) => a === `Bearer ${USAGE_TOKEN}`)).toBe(true);
  });

  it("cancelled and disconnected generations and embeddings each leave exactly one record", async () => {
    const res = await post(`${b.url}/v1/generate`, {
      model: "tiny",
      input_ids: ids(12, 2),
      max_tokens: 3000,
      request_id: "req_c1",
    });
    const s = await readTokens(res, 2);
    await post(`${b.url}/v1/cancel`, { request_id: "req_c1" });
    const events = (await s.rest()).trim().split("\n").map(parseGenerateEvent);
    const streamed = events.filter((e) => e.type === "tokens").length;

    const ac = new AbortController();
    const res2 = await post(
      `${b.url}/v1/generate`,
      { model: "tiny", input_ids: ids(12, 3), max_tokens: 3000, request_id: "req_d1" },
      undefined,
      ac.signal,
    );
    await readTokens(res2, 1);
    ac.abort();

    const emb = await post(`${b.url}/v1/embed`, {
      model: "tiny",
      inputs: [ids(5), ids(7, 2)],
      request_id: "req_e1",
      key_id: "key_e",
    });
    expect(emb.status).toBe(200);
    await emb.json();

    await r.until(() => ["req_c1", "req_d1", "req_e1"].every((id) => r.received.some((x) => x.request_id === id)));
    const byId = (id: string) => r.received.filter((x) => x.request_id === id);
    expect(byId("req_c1")).toEqual([
      expect.objectContaining({
        finish_reason: "cancelled",
        completion_tokens: streamed,
        prompt_tokens: 12,
        key_id: null,
      }),
    ]);
    expect(byId("req_d1")).toEqual([expect.objectContaining({ finish_reason: "cancelled", prompt_tokens: 12 })]);
    expect(byId("req_e1")).toEqual([
      expect.objectContaining({
        kind: "embed",
        finish_reason: "stop",
        prompt_tokens: 12,
        completion_tokens: 0,
        key_id: "key_e",
      }),
    ]);
    expect(Number.isInteger(await metric(b, "moe_edge_usage_journal_segments"))).toBe(true);
  });

  it("POST /v1/usage/status: running, finished (with its record) or unknown, and since", async () => {
    const t0 = Date.now();
    const res = await post(`${b.url}/v1/generate`, {
      model: "tiny",
      input_ids: ids(10, 7),
      max_tokens: 3000,
      request_id: "req_s1",
    });
    const s = await readTokens(res, 1);
    const status = async (request_ids: string[]) => {
      const r2 = await post(`${b.url}/v1/usage/status`, { request_ids });
      expect(r2.status).toBe(200);
      return (await r2.json()) as UsageStatusResponse;
    };
    const st = await status(["req_s1", "req_w1", "req_never"]);
    expect(st.since).toBeLessThanOrEqual(t0);
    expect(st.requests.req_s1).toEqual({ state: "running" });
    expect(st.requests.req_w1).toEqual({
      state: "finished",
      record: r.received.find((x) => x.request_id === "req_w1"),
    });
    expect(st.requests.req_never).toEqual({ state: "unknown" });
    await post(`${b.url}/v1/cancel`, { request_id: "req_s1" });
    await s.rest();
    // Finished the moment the done line is out (the record is known before its fsync even started).
    expect((await status(["req_s1"])).requests.req_s1).toMatchObject({
      state: "finished",
      record: { finish_reason: "cancelled" },
    });
    expect((await post(`${b.url}/v1/usage/status`, { request_ids: [] })).status).toBe(400);
    expect((await post(`${b.url}/v1/usage/status`, { request_ids: ["a b"] })).status).toBe(400);
    expect((await post(`${b.url}/v1/usage/status`, { request_ids: ["x"] }, {})).status).toBe(401);
  });

  it("refuses --usage-url without a usage token", async () => {
    await expect(
      spawnBackend(["--model", devModel("tiny"), "--usage-url", r.url], { env: { USAGE_TOKEN: undefined } }),
    ).rejects.toThrow(/--usage-url needs --usage-token or env USAGE_TOKEN/);
  });
});

describe("backend usage witness across kill -9", () => {
  it("a finished request's record survives a crash mid-stream of another and arrives exactly once after restart", async () => {
    const r = await startReceiver(USAGE_TOKEN, { failNext: Number.MAX_SAFE_INTEGER });
    const dir = await tmpJournal();
    const a = await spawnBackend(backendArgs(dir, r), { env: { USAGE_TOKEN } });
    let b: Backend | undefined;
    try {
      await a.ready;
      const finished = await readEvents(
        await post(`${a.url}/v1/generate`, {
          model: "tiny",
          input_ids: ids(9, 4),
          max_tokens: 3,
          request_id: "req_k1",
          key_id: "key_k",
        }),
      );
      const done = finished.pop() as Extract<GenerateEvent, { type: "done" }>;
      await r.until(() => r.offered.some((x) => x.request_id === "req_k1")); // offered, refused (500)
      const sentK2 = Date.now();
      const mid = await post(`${a.url}/v1/generate`, {
        model: "tiny",
        input_ids: ids(9, 5),
        max_tokens: 3000,
        request_id: "req_k2",
      });
      await readTokens(mid, 2);
      a.proc.kill("SIGKILL");
      expect(await a.exited).toBe("SIGKILL");
      expect((await journalRecords(dir)).map((x) => x.request_id)).toEqual(["req_k1"]);

      r.failNext = 0;
      b = await spawnBackend(backendArgs(dir, r), { env: { USAGE_TOKEN } });
      await b.waitFor(/usage journal .*: 1 record\(s\) pending; delivering/);
      await r.until(() => r.received.length >= 1);
      await b.ready;
      await readEvents(
        await post(`${b.url}/v1/generate`, {
          model: "tiny",
          input_ids: ids(9, 6),
          max_tokens: 2,
          request_id: "req_k3",
        }),
      );
      await r.until(() => r.received.some((x) => x.request_id === "req_k3"));
      expect(r.received.map((x) => x.request_id)).toEqual(["req_k1", "req_k3"]);
      expect(r.received[0]).toMatchObject({ key_id: "key_k", ...done.usage, finish_reason: done.finish_reason });
      // req_k2 was never finished by any backend: there is nothing to witness, so no record.
      expect(r.offered.some((x) => x.request_id === "req_k2")).toBe(false);
      // The restarted backend still knows req_k1 (replayed); for req_k2 it says unknown, with a `since`
      // after req_k2 was sent, so the worker knows that "unknown" proves nothing there.
      const st = (await (
        await post(`${b.url}/v1/usage/status`, { request_ids: ["req_k1", "req_k2"] })
      ).json()) as UsageStatusResponse;
      expect(st.requests.req_k1).toMatchObject({ state: "finished", record: { request_id: "req_k1" } });
      expect(st.requests.req_k2).toEqual({ state: "unknown" });
      expect(st.since).toBeGreaterThan(sentK2);
    } finally {
      a.proc.kill("SIGKILL");
      b?.proc.kill("SIGKILL");
      await r.close();
    }
  });
});

describe("backend usage witness: acknowledged, then more, then kill -9", () => {
  it("a record journaled after every earlier one was acknowledged is replayed after the restart", async () => {
    const r = await startReceiver(USAGE_TOKEN);
    const dir = await tmpJournal();
    const a = await spawnBackend(backendArgs(dir, r), { env: { USAGE_TOKEN } });
    let b: Backend | undefined;
    const generate = async (url: string, request_id: string) =>
      readEvents(await post(`${url}/v1/generate`, { model: "tiny", input_ids: ids(9, 7), max_tokens: 2, request_id }));
    try {
      await a.ready;
      await generate(a.url, "req_a1");
      await r.until(() => r.received.some((x) => x.request_id === "req_a1"));
      r.failNext = Number.MAX_SAFE_INTEGER;
      await generate(a.url, "req_a2");
      await r.until(() => r.offered.some((x) => x.request_id === "req_a2")); // offered, refused (500)
      a.proc.kill("SIGKILL");
      expect(await a.exited).toBe("SIGKILL");
      // The active segment, every earlier record in it acknowledged, still holds req_a2 on disk.
      expect((await journalRecords(dir)).map((x) => x.request_id)).toContain("req_a2");

      r.failNext = 0;
      b = await spawnBackend(backendArgs(dir, r), { env: { USAGE_TOKEN } });
      await r.until(() => r.received.some((x) => x.request_id === "req_a2"));
      expect(r.received.map((x) => x.request_id)).toEqual(["req_a1", "req_a2"]);
    } finally {
      a.proc.kill("SIGKILL");
      b?.proc.kill("SIGKILL");
      await r.close();
    }
  });
});

describe("backend usage witness when the journal cannot be written", () => {
  it("the stream still ends with its done line, and the failure is logged with the request id", async () => {
    const dir = await tmpJournal();
    const b = await spawnBackend(["--model", devModel("tiny"), "--journal-dir", dir]);
    try {
      await b.ready;
      // The journal's first segment is created on the first record: make it /dev/full (ENOSPC).
      await symlink("/dev/full", path.join(dir, "seg-00000001.jsonl"));
      const events = await readEvents(
        await post(`${b.url}/v1/generate`, { model: "tiny", input_ids: ids(6), max_tokens: 2, request_id: "req_full" }),
      );
      expect(events.at(-1)).toMatchObject({ type: "done" });
      await b.waitFor(/usage journal write failed for req_full: .*ENOSPC/);
      // The next record goes to a fresh segment and is written normally.
      await readEvents(
        await post(`${b.url}/v1/generate`, {
          model: "tiny",
          input_ids: ids(6),
          max_tokens: 2,
          request_id: "req_after",
        }),
      );
      expect((await journalRecords(dir, ["seg-00000001.jsonl"])).map((x) => x.request_id)).toEqual(["req_after"]);
    } finally {
      b.proc.kill("SIGKILL");
      await unlink(path.join(dir, "seg-00000001.jsonl")).catch(() => undefined);
    }
  });
});
