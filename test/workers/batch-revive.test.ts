/**
 * A batch whose queue messages were lost (the local queue lives in the worker runtime's memory, and a
 * killed runtime takes it along) is re-queued when polled after going silent, runs each remaining line
 * from one copy, and bills each line once. The real kill, through npm start, is in test/node/elastic.test.ts.
 */
import { SELF, env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { GenerateRequest } from "../../contract/wire";
import { REVIVE, isStale } from "../../worker/batch/revive";
import type { BatchRow } from "../../worker/batch/store";
import { FakeBackend, gate } from "./chat-fake-backend";
import { newKey } from "./chat-harness";
import { QueueDriver, chatLine, getWith, post, upload } from "./batch-harness";

let backend: FakeBackend;
beforeEach(() => {
  backend = new FakeBackend();
  backend.install();
});

type Json = Record<string, any>;

async function createBatch(driver: QueueDriver, key: string, lines: string[]) {
  const file = (await (await upload(key, `${lines.join("\n")}\n`)).json()) as Json;
  const res = await post(driver, key, "/batches", {
    input_file_id: file.id,
    endpoint: "/v1/chat/completions",
    completion_window: "24h",
  });
  expect(res.status).toBe(200);
  return (await res.json()) as Json;
}

/** The batch went silent `ms` ago (its last activity moved back in time). */
const silentFor = (id: string, ms: number) =>
  env.DB.prepare("UPDATE batches SET active_at = ?, created_at = MIN(created_at, ?) WHERE id = ?")
    .bind(Date.now() - ms, Date.now() - ms, id)
    .run();
const row = (id: string) => env.DB.prepare("SELECT * FROM batches WHERE id = ?").bind(id).first<BatchRow>();
const generations = () =>
  backend.seen.filter((s) => s.path === "/v1/generate").map((s) => (s.body as GenerateRequest).request_id);

describe("a batch whose messages were lost", () => {
  it("is re-queued when polled after going silent; each remaining line runs once, billed once", async () => {
    const { key } = await newKey();
    const driver = new QueueDriver();
    const b = await createBatch(driver, key, [chatLine("a"), chatLine("b"), chatLine("c")]);
    await driver.step(1); // validation queues three lines
    await driver.step(1); // line a runs and is recorded
    const lost = driver.pending.splice(0); // the runtime died with lines b and c

    // Polled while recent: nothing happens.
    expect(((await (await getWith(driver, key, `/batches/${b.id}`)).json()) as Json).status).toBe("in_progress");
    expect(driver.pending).toEqual([]);

    await silentFor(b.id, REVIVE.staleMs + 1000);
    const polled = (await (await getWith(driver, key, `/batches/${b.id}`)).json()) as Json;
    expect(polled.status).toBe("in_progress");
    expect(driver.pending.map((p) => p.body)).toEqual([{ v: 1, kind: "validate", batchId: b.id, gen: 1 }]);
    // A second poll right after finds it fresh: one re-queue.
    await getWith(driver, key, `/batches/${b.id}`);
    expect(driver.pending).toHaveLength(1);

    await driver.step(1); // queues b and c again, under generation 1 (a is recorded: not again)
    expect(driver.pending.map((p) => [p.body.kind === "line" && p.body.customId, p.body.gen])).toEqual([
      ["b", 1],
      ["c", 1],
    ]);
    // A copy of the old generation turning up after all (a queue that was only slow) is dropped.
    driver.pending.push(...lost);
    await driver.drain();

    const done = (await (await getWith(driver, key, `/batches/${b.id}`)).json()) as Json;
    expect(done).toMatchObject({ status: "completed", request_counts: { total: 3, completed: 3, failed: 0 } });
    expect(generations().sort()).toEqual([`${b.id}_l1`, `${b.id}_l2`, `${b.id}_l3`]);
    const rows = (
      await env.DB.prepare("SELECT request_id FROM usage_records WHERE batch_id = ? ORDER BY request_id")
        .bind(b.id)
        .all<{ request_id: string }>()
    ).results;
    expect(rows.map((r) => r.request_id)).toEqual([`${b.id}_l1`, `${b.id}_l2`, `${b.id}_l3`]);
  });

  it("a batch whose validation message was lost, or that stopped while finalizing, ends when polled", async () => {
    const { key } = await newKey();
    const driver = new QueueDriver();
    const lostValidation = await createBatch(driver, key, [chatLine("a")]);
    driver.pending.splice(0);
    await silentFor(lostValidation.id, REVIVE.staleMs + 1000);
    await getWith(driver, key, `/batches/${lostValidation.id}`);
    await driver.drain();
    expect(((await (await getWith(driver, key, `/batches/${lostValidation.id}`)).json()) as Json).status).toBe(
      "completed",
    );

    const stopped = await createBatch(driver, key, [chatLine("a")]);
    await driver.drain();
    // Its last line recorded, then the runtime died before the files were written.
    await env.DB.prepare("UPDATE batches SET status = 'finalizing', output_file_id = NULL WHERE id = ?")
      .bind(stopped.id)
      .run();
    await silentFor(stopped.id, REVIVE.staleMs + 1000);
    await getWith(driver, key, `/batches/${stopped.id}`);
    await driver.drain();
    const done = (await (await getWith(driver, key, `/batches/${stopped.id}`)).json()) as Json;
    expect(done).toMatchObject({ status: "completed", request_counts: { total: 1, completed: 1, failed: 0 } });
    expect(done.output_file_id).toBeTruthy();
  });

  it("staleness: silence past the last activity (a delayed line's return counts), doubling with each re-queue", async () => {
    const now = 1_000_000_000;
    const base = { status: "in_progress", created_at: now - 3_600_000, active_at: now - 1000, gen: 0 } as BatchRow;
    expect(isStale(base, now)).toBe(false);
    expect(isStale({ ...base, active_at: now - REVIVE.staleMs - 1 }, now)).toBe(true);
    // A line waiting out a rate limit stamped when it will be back.
    expect(isStale({ ...base, active_at: now + 60_000 }, now + 60_000 + REVIVE.staleMs)).toBe(false);
    expect(isStale({ ...base, active_at: now - REVIVE.staleMs - 1, gen: 1 }, now)).toBe(false);
    expect(isStale({ ...base, active_at: now - 2 * REVIVE.staleMs - 1, gen: 1 }, now)).toBe(true);
    for (const status of ["completed", "failed", "expired", "cancelled"] as const)
      expect(isStale({ ...base, status, active_at: 0 }, now)).toBe(false);
    // A brand-new batch counts from its creation.
    expect(isStale({ ...base, active_at: null, created_at: now - 1000 }, now)).toBe(false);
  });

  it("validation, each handled message and a running line's heartbeat keep the batch fresh", async () => {
    const { key } = await newKey();
    const driver = new QueueDriver();
    const g = gate(1);
    for (const host of ["r1.test", "r2.test", "r3.test"])
      backend.set(host, { kind: "ok", text: "a long answer", chunk: 1, gate: g });
    const b = await createBatch(driver, key, [chatLine("a", { max_tokens: 20 }), chatLine("b")]);
    await silentFor(b.id, REVIVE.staleMs + 1000);
    await driver.step(1); // validation
    expect(isStale((await row(b.id))!)).toBe(false);

    await silentFor(b.id, REVIVE.staleMs + 1000);
    const beat = REVIVE.heartbeatMs;
    REVIVE.heartbeatMs = 20;
    try {
      const running = driver.step(1); // line a starts (stamps), then is held after one token
      const tick = () => new Promise((r) => setTimeout(r, 10));
      for (let i = 0; i < 200 && !generations().includes(`${b.id}_l1`); i++) await tick();
      await silentFor(b.id, REVIVE.staleMs + 1000);
      for (let i = 0; i < 100 && isStale((await row(b.id))!); i++) await tick();
      expect(isStale((await row(b.id))!), "the heartbeat stamped the running line's batch").toBe(false);
      g.release();
      await running;
    } finally {
      REVIVE.heartbeatMs = beat;
    }
  });
});

describe("a line run again after its worker died", () => {
  const long = "y".repeat(150); // 150 tokens from the fake backend: past the first 64-token budget slice
  const pricing = { input: 35000, cached_input: 3500, output: 105000 };

  async function setup() {
    const { key, id: keyId } = await newKey();
    const driver = new QueueDriver();
    const b = await createBatch(driver, key, [chatLine("a", { max_tokens: 150 })]);
    await driver.step(1); // validation
    const { accountById } = await import("../../worker/billing/keys");
    const account = (await accountById(env.DB, keyId))!;
    const requestId = `${b.id}_l1`;
    const meter = await import("../../worker/billing/meter");
    // The first attempt: admitted, then its worker died mid-line.
    await meter.admit(driver.env, account, {
      requestId,
      model: "mistral-tiny",
      pricing,
      promptTokens: 10,
      maxCompletionTokens: 150,
      budgetCompletionTokens: 64,
      batchId: b.id,
    });
    /** The first attempt's backend report (it had generated 40 tokens when the worker died). */
    const firstReport = async () => {
      const now = Date.now();
      const record = {
        id: `rec-${requestId}`,
        request_id: requestId,
        kind: "generate",
        key_id: keyId,
        tier: "mistral-tiny",
        model: "tiny",
        prompt_tokens: 10,
        cached_tokens: 0,
        completion_tokens: 40,
        finish_reason: "cancelled",
        started_at: now,
        ended_at: now,
        backend: "test:1",
      };
      const res = await SELF.fetch("https://edge.test/internal/usage", {
        method: "POST",
        headers: { authorization: "Bearer test-usage-token-0123456789abcdef", "content-type": "application/json" },
        body: JSON.stringify({ records: [record] }),
      });
      expect(res.status).toBe(200);
    };
    const result = async () => {
      const done = (await (await getWith(driver, key, `/batches/${b.id}`)).json()) as Json;
      const out = (await (await getWith(driver, key, `/files/${done.output_file_id}/content`)).text()).trim();
      const rows = (await env.DB.prepare("SELECT * FROM usage_records WHERE batch_id = ?").bind(b.id).all<Json>())
        .results;
      return { done, line: JSON.parse(out) as Json, rows };
    };
    return { driver, firstReport, result };
  }

  it("its earlier attempt already billed: the rerun is reserved afresh and runs in full, billed once", async () => {
    for (const host of ["r1.test", "r2.test", "r3.test"])
      backend.set(host, { kind: "ok", text: long, chunk: 4, delayMs: 5 });
    const { driver, firstReport, result } = await setup();
    await firstReport();
    await driver.drain();
    const { done, line, rows } = await result();
    expect(done.request_counts).toEqual({ total: 1, completed: 1, failed: 0 });
    expect(line.response.body.usage.completion_tokens).toBe(150);
    expect(line.response.body.usage.budget_exhausted).toBeUndefined();
    expect(rows.map((r) => [r.status, r.completion_tokens])).toEqual([["ok", 150]]);
  });

  it("its earlier attempt's report landing while the rerun runs does not cut the rerun short", async () => {
    const g = gate(8);
    for (const host of ["r1.test", "r2.test", "r3.test"])
      backend.set(host, { kind: "ok", text: long, chunk: 4, delayMs: 5, gate: g });
    const { driver, firstReport, result } = await setup();
    const running = driver.drain(); // the rerun, on the first attempt's reservation, held after 8 tokens
    for (let i = 0; i < 200 && generations().length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    await firstReport(); // settles the id under the running rerun
    g.release();
    await running;
    const { line, rows } = await result();
    expect(line.response.body.usage.completion_tokens).toBe(150);
    expect(line.response.body.usage.budget_exhausted).toBeUndefined();
    expect(rows.map((r) => [r.status, r.completion_tokens])).toEqual([["ok", 150]]);
  });
});
