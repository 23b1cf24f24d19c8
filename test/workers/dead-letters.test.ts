/**
 * Usage messages that exhaust the queue's retries reach the dead-letter queue, whose
 * consumer parks them in KV; the admin replay writes them into D1 idempotently (one row per id).
 */
import { createExecutionContext, createMessageBatch, env, getQueueResult, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../worker/index";
import type { UsageRecord } from "../../worker/billing/ledger";
import type { UsageMessage } from "../../worker/billing/meter";
import { newKey } from "./chat-harness";

const ADMIN = { authorization: "Bearer test-admin-token-0123456789abcdef" };
const admin = (path: string, method = "GET") =>
  SELF.fetch(`https://edge.test/v1/admin${path}`, { method, headers: ADMIN });
const rowsFor = async (id: string) =>
  (await env.DB.prepare("SELECT * FROM usage_records WHERE request_id = ?").bind(id).all()).results;

describe("usage dead-letter queue", () => {
  it("the DLQ consumer parks records in KV; replay writes each once into D1 and empties the DLQ; replaying again is a no-op", async () => {
    const { id: keyId } = await newKey();
    const record = (requestId: string): UsageRecord => ({
      requestId,
      keyId,
      model: "mistral-small",
      promptTokens: 5,
      cachedTokens: 0,
      completionTokens: 5,
      costUnits: String(5 * 600_000 + 5 * 1_800_000),
      status: "ok",
      startedAt: Date.now(),
      endedAt: Date.now(),
    });
    const ids = [`dlq-${crypto.randomUUID()}`, `dlq-${crypto.randomUUID()}`];
    const msgs: UsageMessage[] = ids.map((id) => ({ v: 1, record: record(id), ledger: true, limiter: false }));
    // The same record dead-lettered twice (two deliveries) must still give one row.
    const batch = createMessageBatch<unknown>("moe-edge-usage-dlq", [
      { id: "d1", timestamp: new Date(), attempts: 1, body: msgs[0] },
      { id: "d2", timestamp: new Date(), attempts: 1, body: msgs[1] },
      { id: "d3", timestamp: new Date(), attempts: 1, body: msgs[0] },
      { id: "d4", timestamp: new Date(), attempts: 1, body: { nonsense: true } },
    ]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks.sort()).toEqual(["d1", "d2", "d3", "d4"]);
    for (const id of ids) expect(await rowsFor(id)).toHaveLength(0);

    expect(((await (await admin("/usage/dead-letters")).json()) as { count: number }).count).toBeGreaterThanOrEqual(3);
    let last = { replayed: 0, failed: 0, remaining: 1 };
    for (let i = 0; i < 10 && last.remaining > 0; i++)
      last = (await (await admin("/usage/dead-letters/replay?limit=2", "POST")).json()) as typeof last;
    expect(last).toMatchObject({ failed: 0, remaining: 0 });
    for (const id of ids)
      expect(await rowsFor(id)).toMatchObject([{ status: "ok", prompt_tokens: 5, completion_tokens: 5 }]);
    expect(await (await admin("/usage/dead-letters/replay", "POST")).json()).toMatchObject({
      replayed: 0,
      remaining: 0,
    });
    for (const id of ids) expect(await rowsFor(id)).toHaveLength(1);
  });

  it("replay needs the admin token", async () => {
    expect(
      (
        await SELF.fetch("https://edge.test/v1/admin/usage/dead-letters/replay", {
          method: "POST",
          headers: { "cf-connecting-ip": "192.0.2.77" },
        })
      ).status,
    ).toBe(401);
  });
});
