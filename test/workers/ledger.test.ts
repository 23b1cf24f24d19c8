import { createExecutionContext, createMessageBatch, env, getQueueResult, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { lookupAccount } from "../../worker/billing/keys";
import { admit, recordRejected, settle, type UsageMessage } from "../../worker/billing/meter";
import type { UsageRecord } from "../../worker/billing/ledger";
import type { Account, Pricing, SettleRequest } from "../../worker/billing/types";
import { consumeUsage } from "../../worker/billing/ledger-queue";
import type { Env } from "../../worker/env";

const TIERS = JSON.parse(env.TIERS) as Record<string, { price: Pricing }>;
const TINY = TIERS["mistral-tiny"].price;
const SMALL = TIERS["mistral-small"].price;
const ADMIN = { authorization: "Bearer test-admin-token-0123456789abcdef", "content-type": "application/json" };

async function newKey(plan: Record<string, unknown> = {}): Promise<{ key: string; account: Account }> {
  const res = await SELF.fetch("https://edge.test/v1/admin/keys", {
    method: "POST",
    headers: ADMIN,
    body: JSON.stringify({
      name: "u",
      tiers: ["mistral-tiny", "mistral-small"],
      rpm: 1000,
      tpm: 1_000_000,
      monthly_budget_micros: 1_000_000_000,
      ...plan,
    }),
  });
  const { key } = (await res.json()) as { key: string };
  return { key, account: (await lookupAccount(env.DB, key))! };
}

const settleReq = (over: Partial<SettleRequest> = {}): SettleRequest => ({
  requestId: `led-${crypto.randomUUID()}`,
  model: "mistral-tiny",
  pricing: TINY,
  promptTokens: 3,
  cachedTokens: 0,
  completionTokens: 0,
  status: "ok",
  startedAt: Date.now(),
  endedAt: Date.now(),
  ...over,
});

interface Row {
  request_id: string;
  key_id: string;
  model: string;
  day: string;
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
  cost: string;
  status: string;
  started_at: number;
  ended_at: number;
}
const rowsFor = async (requestId: string) =>
  (
    await env.DB.prepare("SELECT *, CAST(cost_units AS TEXT) AS cost FROM usage_records WHERE request_id = ?")
      .bind(requestId)
      .all<Row>()
  ).results;

async function waitFor<T>(f: () => Promise<T | undefined>, ms = 8000): Promise<T | undefined> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await f();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

const brokenDb = {
  prepare() {
    throw new Error("D1 is down");
  },
} as unknown as D1Database;

describe("usage ledger", () => {
  it("exactly one record per request id, however often settle runs", async () => {
    const { account } = await newKey();
    const r = settleReq({
      promptTokens: 1000,
      cachedTokens: 600,
      completionTokens: 10,
      startedAt: Date.UTC(2026, 10, 3, 12),
      endedAt: Date.UTC(2026, 10, 3, 12, 0, 2),
    });
    await admit(env, account, {
      requestId: r.requestId,
      model: r.model,
      pricing: TINY,
      promptTokens: 1000,
      maxCompletionTokens: 10,
    });
    await Promise.all([
      settle(env, account, r),
      settle(env, account, r),
      settle(env, account, { ...r, status: "error", completionTokens: 999 }),
    ]);
    await settle(env, account, r);
    const rows = await rowsFor(r.requestId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      key_id: account.keyId,
      model: "mistral-tiny",
      day: "2026-11-03",
      prompt_tokens: 1000,
      cached_tokens: 600,
      completion_tokens: 10,
      cost: String(400 * 140_000 + 600 * 14_000 + 10 * 420_000),
      started_at: Date.UTC(2026, 10, 3, 12),
      ended_at: Date.UTC(2026, 10, 3, 12, 0, 2),
    });
    expect(["ok", "error"]).toContain(rows[0].status);
  });

  it("refused requests leave a zero-cost 'rejected' record: admit's own refusal, recordRejected, settle(rejected)", async () => {
    const { account } = await newKey({ rpm: 1 });
    await admit(env, account, {
      requestId: `led-${crypto.randomUUID()}`,
      model: "mistral-tiny",
      pricing: TINY,
      promptTokens: 1,
      maxCompletionTokens: 1,
    });
    const refusedId = `led-${crypto.randomUUID()}`;
    await expect(
      admit(env, account, {
        requestId: refusedId,
        model: "mistral-tiny",
        pricing: TINY,
        promptTokens: 50,
        maxCompletionTokens: 50,
      }),
    ).rejects.toMatchObject({ status: 429 });
    expect(await rowsFor(refusedId)).toMatchObject([
      { status: "rejected", cost: "0", prompt_tokens: 0, completion_tokens: 0 },
    ]);

    const badRequestId = `led-${crypto.randomUUID()}`;
    await recordRejected(env, account, { requestId: badRequestId, model: "mistral-tiny" });
    expect(await rowsFor(badRequestId)).toMatchObject([{ status: "rejected", cost: "0" }]);

    const s = settleReq({ status: "rejected", promptTokens: 500, completionTokens: 5 });
    await settle(env, account, s);
    expect(await rowsFor(s.requestId)).toMatchObject([{ status: "rejected", cost: "0", prompt_tokens: 0 }]);
  });

  it("settle never rejects: garbage input, D1 and queue both down", async () => {
    const { account } = await newKey();
    const deadQueue = { send: () => Promise.reject(new Error("queue down")) } as unknown as Queue;
    const broken = { ...env, DB: brokenDb, USAGE_QUEUE: deadQueue } as Env;
    await expect(settle(broken, account, settleReq())).resolves.toBeUndefined();
    const garbage = settleReq({
      pricing: { input: -1 } as unknown as Pricing,
      promptTokens: Number.NaN,
      completionTokens: -3,
    });
    await expect(settle(env, account, garbage)).resolves.toBeUndefined();
    expect(await rowsFor(garbage.requestId)).toMatchObject([{ cost: "0", prompt_tokens: 0, completion_tokens: 0 }]);
  });

  it("when D1 fails, the record goes through USAGE_QUEUE and its consumer writes it", async () => {
    const { account } = await newKey();
    const r = settleReq({ promptTokens: 7, completionTokens: 2 });
    await settle({ ...env, DB: brokenDb } as Env, account, r);
    const rows = await waitFor(async () => {
      const x = await rowsFor(r.requestId);
      return x.length ? x : undefined;
    });
    expect(rows).toMatchObject([
      { status: "ok", prompt_tokens: 7, completion_tokens: 2, cost: String(7 * 140_000 + 2 * 420_000) },
    ]);
  });

  it("the queue consumer is idempotent and drops malformed messages", async () => {
    const { account } = await newKey();
    const record: UsageRecord = {
      requestId: `led-${crypto.randomUUID()}`,
      keyId: account.keyId,
      model: "mistral-small",
      promptTokens: 5,
      cachedTokens: 0,
      completionTokens: 5,
      costUnits: String(5 * 600_000 + 5 * 1_800_000),
      status: "ok",
      startedAt: Date.now(),
      endedAt: Date.now(),
    };
    const body: UsageMessage = { v: 1, record, ledger: true, limiter: true };
    const batch = createMessageBatch<unknown>("moe-edge-usage", [
      { id: "m1", timestamp: new Date(), attempts: 1, body },
      { id: "m2", timestamp: new Date(), attempts: 2, body },
      { id: "m3", timestamp: new Date(), attempts: 1, body: { v: 1, record: { requestId: "x" } } },
    ]);
    const ctx = createExecutionContext();
    await consumeUsage(batch, env);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks.sort()).toEqual(["m1", "m2", "m3"]);
    expect(result.retryMessages).toEqual([]);
    expect(await rowsFor(record.requestId)).toHaveLength(1);
  });
});

describe("GET /v1/usage", () => {
  it("one row per tier and day, the caller's own only, cost rounded once from the exact sum", async () => {
    const me = await newKey();
    const other = await newKey();
    const day1 = Date.UTC(2026, 9, 30, 10);
    const day2 = Date.UTC(2026, 9, 31, 23, 59);
    // Three 3-token tiny requests on day1: 3 × 0.42 µ€ = 1.26 µ€ -> 1 (each alone would round to 0).
    for (let i = 0; i < 3; i++) await settle(env, me.account, settleReq({ startedAt: day1, endedAt: day1 }));
    await settle(env, me.account, settleReq({ startedAt: day1, endedAt: day1, status: "rejected" }));
    await settle(
      env,
      me.account,
      settleReq({
        model: "mistral-small",
        pricing: SMALL,
        promptTokens: 100,
        cachedTokens: 40,
        completionTokens: 20,
        startedAt: day1,
        endedAt: day1,
      }),
    );
    await settle(
      env,
      me.account,
      settleReq({ promptTokens: 10, completionTokens: 10, status: "cancelled", startedAt: day2, endedAt: day2 }),
    );
    await settle(env, other.account, settleReq({ startedAt: day1, endedAt: day1 }));

    const res = await SELF.fetch("https://edge.test/v1/usage?from=2026-10-01&to=2026-10-31", {
      headers: { authorization: `Bearer ${me.key}` },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      object: "list",
      data: [
        {
          date: "2026-10-30",
          tier: "mistral-small",
          requests: 1,
          prompt_tokens: 100,
          cached_tokens: 40,
          completion_tokens: 20,
          cost_micros: 75,
          batch_requests: 0,
          batch_cost_micros: 0,
        }, // 60·0.6 + 40·0.06 + 20·1.8 = 74.4, rounded up
        {
          date: "2026-10-30",
          tier: "mistral-tiny",
          requests: 3,
          prompt_tokens: 9,
          cached_tokens: 0,
          completion_tokens: 0,
          cost_micros: 2,
          batch_requests: 0,
          batch_cost_micros: 0,
        }, // 1.26, rounded up
        {
          date: "2026-10-31",
          tier: "mistral-tiny",
          requests: 1,
          prompt_tokens: 10,
          cached_tokens: 0,
          completion_tokens: 10,
          cost_micros: 6,
          batch_requests: 0,
          batch_cost_micros: 0,
        }, // 1.4 + 4.2 = 5.6
      ],
    });

    const only31 = (await (
      await SELF.fetch("https://edge.test/v1/usage?from=2026-10-31&to=2026-10-31", {
        headers: { authorization: `Bearer ${me.key}` },
      })
    ).json()) as { data: unknown[] };
    expect(only31.data).toHaveLength(1);
    // Default range is the current month: nothing of October 2026 unless that is now.
    const def = (await (
      await SELF.fetch("https://edge.test/v1/usage", { headers: { authorization: `Bearer ${me.key}` } })
    ).json()) as { data: unknown[] };
    expect(Array.isArray(def.data)).toBe(true);
    expect(
      (
        await SELF.fetch("https://edge.test/v1/usage?from=yesterday", {
          headers: { authorization: `Bearer ${me.key}` },
        })
      ).status,
    ).toBe(400);

    // Admin view: per key, with the exact sum and the rejected count.
    const admin = (await (
      await SELF.fetch(`https://edge.test/v1/admin/usage?key_id=${me.account.keyId}&from=2026-10-30&to=2026-10-30`, {
        headers: ADMIN,
      })
    ).json()) as { data: Record<string, unknown>[] };
    expect(admin.data).toEqual([
      expect.objectContaining({
        key_id: me.account.keyId,
        tier: "mistral-small",
        cost_units: String(60 * 600_000 + 40 * 60_000 + 20 * 1_800_000),
      }),
      expect.objectContaining({
        key_id: me.account.keyId,
        tier: "mistral-tiny",
        requests: 3,
        rejected: 1,
        cost_units: "1260000",
        cost_micros: 2,
      }),
    ]);
  });

  it("sums past 2^53 units stay exact", async () => {
    const { key, account } = await newKey();
    const day = Date.UTC(2026, 8, 15);
    // 2 × 4e9 tokens × 1.8e6 = 1.44e16 units > 2^53 (9.007e15); 14,400,000,003.6 µ€ rounds to ...004.
    for (let i = 0; i < 2; i++)
      await settle(
        env,
        account,
        settleReq({
          model: "mistral-small",
          pricing: SMALL,
          promptTokens: 0,
          completionTokens: 4_000_000_001,
          startedAt: day,
          endedAt: day,
        }),
      );
    const admin = (await (
      await SELF.fetch(`https://edge.test/v1/admin/usage?key_id=${account.keyId}`, { headers: ADMIN })
    ).json()) as { data: { cost_units: string; cost_micros: number }[] };
    expect(admin.data[0].cost_units).toBe((2n * 4_000_000_001n * 1_800_000n).toString());
    expect(admin.data[0].cost_micros).toBe(14_400_000_004);
    const mine = (await (
      await SELF.fetch("https://edge.test/v1/usage?from=2026-09-01", { headers: { authorization: `Bearer ${key}` } })
    ).json()) as { data: { cost_micros: number }[] };
    expect(mine.data[0].cost_micros).toBe(14_400_000_004);
  });

  it("GET /v1/admin/usage/requests lists per-request records with exact and rounded cost", async () => {
    const { account } = await newKey();
    const r = settleReq({ promptTokens: 3 });
    await settle(env, account, r);
    const res = await SELF.fetch(`https://edge.test/v1/admin/usage/requests?request_id=${r.requestId}`, {
      headers: ADMIN,
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      data: {
        request_id: string;
        key_id: string;
        status: string;
        prompt_tokens: number;
        cost_units: string;
        cost_micros: number;
      }[];
    };
    expect(body.data).toHaveLength(1);
    expect(body.data[0]).toMatchObject({
      request_id: r.requestId,
      key_id: account.keyId,
      status: "ok",
      prompt_tokens: 3,
      cost_units: "420000",
      cost_micros: 1, // rounded up, as the response's usage.cost_micros
    });
    const bad = await SELF.fetch("https://edge.test/v1/admin/usage/requests?limit=0", { headers: ADMIN });
    expect(bad.status).toBe(400);
    const noAuth = await SELF.fetch("https://edge.test/v1/admin/usage/requests");
    expect(noAuth.status).toBe(401);
  });
});
