/**
 * The merge of the two witnesses of one request (worker/billing/report-merge.ts): idempotence under every
 * order and duplication of the worker's settle and the backend's report, difference billing after a backend
 * failure, a final charge, the limiter's rebuild from D1, and late reservations resolved by asking the
 * backend (worker/billing/late-reservations.ts). The endpoint itself: usage-witness.test.ts.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { UsageStatusResponse } from "../../contract/usage";
import { admit, limiterFor, settle } from "../../worker/billing/meter";
import type { Account } from "../../worker/billing/types";
import { ASK_AFTER_MS } from "../../worker/billing/late-reservations";
import { TINY, admitted, cost, deliver, newAccount, report, rows, status, workerSettle } from "./usage-witness-harness";

afterEach(() => vi.restoreAllMocks());

describe("the two writes of one request, in every order", () => {
  // W = the worker's settle, B = the backend's report. The row and the budget end the same whatever the order.
  const orders = ["WB", "BW", "WBWB", "BWBW", "BBW", "WWB", "W||B"];
  for (const [label, workerCount, backendCount] of [
    ["equal counts", 5, 5],
    ["backend counted more", 5, 9],
    ["backend counted less", 5, 3],
  ] as const) {
    it(`${label}: ${orders.join(", ")} all end in one row, billed once`, async () => {
      const account = await newAccount();
      const finals: string[] = [];
      let spent = 0n;
      for (const order of orders) {
        const id = await admitted(account);
        const w = () => settle(env, account, workerSettle(id, workerCount, "cancelled"));
        const b = () =>
          deliver([report(account, id, { completion_tokens: backendCount })]).then((r) => expect(r.status).toBe(200));
        if (order === "W||B") await Promise.all([w(), b(), w(), b()]);
        else for (const step of order) await (step === "W" ? w() : b());
        const [row] = await rows(id);
        const billed = Math.max(workerCount, backendCount);
        expect(row).toMatchObject({
          status: "cancelled",
          completion_tokens: billed,
          cost: cost(TINY, billed),
          reconciled: (BigInt(cost(TINY, billed)) - BigInt(cost(TINY, workerCount))).toString(),
        });
        expect(row.backend_reported_at).not.toBeNull();
        finals.push(JSON.stringify([row.status, row.prompt_tokens, row.completion_tokens, row.cost, row.reconciled]));
        spent += BigInt(row.cost);
        expect(await status(account)).toMatchObject({ spentUnits: spent.toString(), reservations: 0 });
      }
      expect(new Set(finals).size).toBe(1);
    });
  }
});

describe("a backend failure: what the client received is final, whatever the report counts", () => {
  // A stalled replica given up on mid-stream runs on for a step or two before it sees the cancel; its
  // report then counts tokens the client never received (README "Backend failures").
  const orders = ["WB", "BW", "WBWB", "BWBW", "BBW", "WWB", "W||B"];
  for (const [label, workerCount, backendCount] of [
    ["backend counted more", 5, 9],
    ["no completion delivered (failed before the first token)", 0, 4],
    ["backend counted less", 5, 3],
  ] as const) {
    it(`${label}: ${orders.join(", ")} all bill the worker's count, once`, async () => {
      const account = await newAccount();
      let spent = 0n;
      for (const order of orders) {
        const id = await admitted(account);
        const w = () => settle(env, account, { ...workerSettle(id, workerCount, "error"), deliveredFinal: true });
        const b = () =>
          deliver([report(account, id, { completion_tokens: backendCount })]).then((r) => expect(r.status).toBe(200));
        if (order === "W||B") await Promise.all([w(), b(), w(), b()]);
        else for (const step of order) await (step === "W" ? w() : b());
        const [row] = await rows(id);
        expect({ order, ...row }).toMatchObject({
          order,
          status: "error",
          completion_tokens: workerCount,
          cost: cost(TINY, workerCount),
          reconciled: "0",
        });
        spent += BigInt(cost(TINY, workerCount));
        expect({ order, ...(await status(account)) }).toMatchObject({
          order,
          spentUnits: spent.toString(),
          reservations: 0,
        });
      }
    });
  }
});

describe("a final charge in the limiter", () => {
  it("a report's charge replayed late (queued while the limiter was unreachable) does not raise it", async () => {
    const account = await newAccount();
    const id = await admitted(account);
    await settle(env, account, { ...workerSettle(id, 5, "error"), deliveredFinal: true });
    // merge.ts queues the report's limiter charge when the limiter is unreachable; it lands after the final.
    await limiterFor(env, account.keyId).settle({
      keyId: account.keyId,
      requestId: id,
      tier: "mistral-tiny",
      tokens: 19,
      units: cost(TINY, 9),
      previousUnits: cost(TINY, 5),
      startedAt: Date.now(),
    });
    expect(await status(account)).toMatchObject({ spentUnits: cost(TINY, 5), reservations: 0 });
  });
});

describe("the limiter rebuilds from D1", () => {
  it("after its storage is deleted mid-month, admission honours the month's real spend", async () => {
    const account = await newAccount(10); // 10 µ€
    for (let i = 0; i < 2; i++) {
      const id = await admitted(account, TINY, 8);
      await settle(env, account, workerSettle(id, 8)); // 10·0.14 + 8·0.42 = 4.76 µ€ each
    }
    const before = (await status(account)).spentUnits;
    expect(before).toBe("9520000");
    const stub = limiterFor(env, account.keyId);
    await runInDurableObject(stub, (_o: unknown, state: DurableObjectState) => {
      for (const t of ["requests", "spend", "periods", "buckets", "meta"]) state.storage.sql.exec(`DELETE FROM ${t}`);
    });
    const refused = await admit(env, account, {
      requestId: "req_after_loss",
      model: "mistral-tiny",
      pricing: TINY,
      promptTokens: 10,
      maxCompletionTokens: 10,
    }).then(
      () => null,
      (x: { code?: string }) => x,
    );
    expect(refused?.code).toBe("budget_insufficient"); // 0.48 µ€ remain, the request needs 5.6
    expect((await status(account)).spentUnits).toBe(before);
  });
});

describe("a reservation whose settle never came (the alarm asks the backend)", () => {
  async function late(account: Account): Promise<string> {
    const id = await admitted(account);
    await runInDurableObject(limiterFor(env, account.keyId), (_o: unknown, state: DurableObjectState) => {
      state.storage.sql.exec(
        "UPDATE requests SET created_ms = created_ms - ? WHERE request_id = ?",
        ASK_AFTER_MS + 1000,
        id,
      );
    });
    return id;
  }
  function backendSays(answer: (id: string) => UsageStatusResponse["requests"][string], since: number) {
    const asked: string[] = [];
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = new URL(input instanceof Request ? input.url : input.toString());
      expect(url.pathname).toBe("/v1/usage/status");
      const ids = (JSON.parse(String(init?.body)) as { request_ids: string[] }).request_ids;
      asked.push(...ids);
      return Response.json({
        since,
        requests: Object.fromEntries(ids.map((i) => [i, answer(i)])),
      } satisfies UsageStatusResponse);
    });
    return asked;
  }

  it("finished: the backend's record is merged as recovered and settles the reservation", async () => {
    const account = await newAccount();
    const id = await late(account);
    const asked = backendSays((i) => ({ state: "finished", record: report(account, i, { completion_tokens: 6 }) }), 0);
    expect(await runDurableObjectAlarm(limiterFor(env, account.keyId))).toBe(true);
    expect(asked).toContain(id);
    expect(await rows(id)).toMatchObject([{ status: "recovered", completion_tokens: 6, cost: cost(TINY, 6) }]);
    expect(await status(account)).toMatchObject({ reservations: 0, spentUnits: cost(TINY, 6) });
  });

  it("unknown with since before the admission: never seen, released without charge", async () => {
    const account = await newAccount();
    const id = await late(account);
    backendSays(() => ({ state: "unknown" }), 0);
    await runDurableObjectAlarm(limiterFor(env, account.keyId));
    expect(await status(account)).toMatchObject({ reservations: 0, reservedUnits: "0", spentUnits: "0" });
    expect(await rows(id)).toHaveLength(0);
  });

  it("running, or unknown from a backend restarted after the admission: kept", async () => {
    const account = await newAccount();
    await late(account);
    backendSays(() => ({ state: "running" }), 0);
    await runDurableObjectAlarm(limiterFor(env, account.keyId));
    expect((await status(account)).reservations).toBe(1);
    vi.restoreAllMocks();
    backendSays(() => ({ state: "unknown" }), Date.now());
    await runDurableObjectAlarm(limiterFor(env, account.keyId));
    expect((await status(account)).reservations).toBe(1);
  });
});
