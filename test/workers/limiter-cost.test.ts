/**
 * The money path's per-request cost stays bounded: the KeyLimiter's id table is swept by its alarm
 * through an index, and a "rejected" record for a request never admitted costs no Durable Object
 * round trip, while one for an admitted request still releases its reservation at once.
 */
import { env, runDurableObjectAlarm, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { lookupAccount } from "../../worker/billing/keys";
import { admit, admittedTracked, limiterFor, recordRejected, settle } from "../../worker/billing/meter";
import type { Account, Pricing } from "../../worker/billing/types";

const TINY = (JSON.parse(env.TIERS) as Record<string, { price: Pricing }>)["mistral-tiny"].price;
const RETAIN_MS = 48 * 3600_000;
const rid = () => `cost-${crypto.randomUUID()}`;

async function newAccount(): Promise<Account> {
  const res = await SELF.fetch("https://edge.test/v1/admin/keys", {
    method: "POST",
    headers: { authorization: "Bearer test-admin-token-0123456789abcdef", "content-type": "application/json" },
    body: JSON.stringify({
      name: "c",
      tiers: ["mistral-tiny"],
      rpm: 1000,
      tpm: 1_000_000,
      monthly_budget_micros: 1_000_000_000,
    }),
  });
  const { key } = (await res.json()) as { key: string };
  return (await lookupAccount(env.DB, key))!;
}

const limiterRows = (account: Account) =>
  runInDurableObject(limiterFor(env, account.keyId), (_o: unknown, state: DurableObjectState) =>
    state.storage.sql.exec<{ request_id: string; state: string }>("SELECT request_id, state FROM requests").toArray(),
  );
const ledgerStatus = async (requestId: string) =>
  (
    await env.DB.prepare("SELECT status FROM usage_records WHERE request_id = ?")
      .bind(requestId)
      .first<{ status: string }>()
  )?.status;

describe("KeyLimiter id table", () => {
  it("the alarm forgets settled ids older than 48 h (through the state index) and keeps recent ones", async () => {
    const account = await newAccount();
    const ids = [rid(), rid(), rid()];
    for (const requestId of ids) {
      await admit(env, account, {
        requestId,
        model: "mistral-tiny",
        pricing: TINY,
        promptTokens: 2,
        maxCompletionTokens: 2,
      });
      await settle(env, account, {
        requestId,
        model: "mistral-tiny",
        pricing: TINY,
        promptTokens: 2,
        cachedTokens: 0,
        completionTokens: 1,
        status: "ok",
        startedAt: Date.now(),
        endedAt: Date.now(),
      });
    }
    const stub = limiterFor(env, account.keyId);
    const plan = await runInDurableObject(stub, (_o: unknown, state: DurableObjectState) => {
      state.storage.sql.exec(
        "UPDATE requests SET created_ms = created_ms - ? WHERE request_id != ?",
        RETAIN_MS + 60_000,
        ids[2],
      );
      return state.storage.sql
        .exec<{ detail: string }>(
          "EXPLAIN QUERY PLAN DELETE FROM requests WHERE state IN ('settled', 'expired') AND created_ms < 0",
        )
        .toArray()
        .map((r) => r.detail)
        .join(" ");
    });
    expect(plan).toContain("requests_state");
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await limiterRows(account)).map((r) => r.request_id)).toEqual([ids[2]]);
  });
});

describe("rejected records", () => {
  it("before admission: a ledger row and no limiter round trip (nothing to release)", async () => {
    const account = await newAccount();
    const requestId = rid();
    await recordRejected(env, account, { requestId, model: "mistral-tiny" });
    expect(await ledgerStatus(requestId)).toBe("rejected");
    expect(await limiterRows(account)).toEqual([]);
  });

  it("after admission: the reservation is released at once and the id forgotten by the isolate", async () => {
    const account = await newAccount();
    const requestId = rid();
    const before = admittedTracked();
    await admit(env, account, {
      requestId,
      model: "mistral-tiny",
      pricing: TINY,
      promptTokens: 5,
      maxCompletionTokens: 50,
    });
    expect(admittedTracked()).toBe(before + 1);
    expect((await limiterFor(env, account.keyId).status()).reservations).toBe(1);
    await recordRejected(env, account, { requestId, model: "mistral-tiny" });
    expect(admittedTracked()).toBe(before);
    expect(await limiterFor(env, account.keyId).status()).toMatchObject({
      reservations: 0,
      reservedUnits: "0",
      spentUnits: "0",
    });
    expect(await limiterRows(account)).toEqual([{ request_id: requestId, state: "settled" }]);
    expect(await ledgerStatus(requestId)).toBe("rejected");
  });
});
