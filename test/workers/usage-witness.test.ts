/**
 * POST /internal/usage and the merge of the two witnesses (worker/billing/report-merge.ts): auth, validation,
 * idempotence under every order and duplication of the worker's settle and the backend's report,
 * recovered pricing, difference billing, budgets, the limiter's rebuild from D1, and late reservations
 * resolved by asking the backend (worker/billing/late-reservations.ts).
 */
import { env, runDurableObjectAlarm, runInDurableObject, SELF } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { UsageRecord as Report, UsageStatusResponse } from "../../contract/usage";
import { createApp } from "../../worker/app";
import { lookupAccount } from "../../worker/billing/keys";
import { admit, limiterFor, settle } from "../../worker/billing/meter";
import { costUnits } from "../../worker/billing/money";
import type { Account, Pricing, SettleRequest, UsageStatus } from "../../worker/billing/types";
import type { ErrorBody } from "../../worker/errors";
import { ASK_AFTER_MS } from "../../worker/billing/late-reservations";

const BASE = "https://edge.test";
const TINY = (JSON.parse(env.TIERS) as Record<string, { price: Pricing }>)["mistral-tiny"].price;
/** An admission price that differs from TIERS': a recovered record must be priced with it. */
const OLD_PRICE: Pricing = { input: 100_000, cached_input: 10_000, output: 300_000 };
const USAGE = { authorization: "Bearer test-usage-token-0123456789abcdef", "content-type": "application/json" };

afterEach(() => vi.restoreAllMocks());

async function newAccount(budgetMicros = 1_000_000_000): Promise<Account> {
  const res = await SELF.fetch(`${BASE}/v1/admin/keys`, {
    method: "POST",
    headers: { authorization: "Bearer test-admin-token-0123456789abcdef", "content-type": "application/json" },
    body: JSON.stringify({
      name: "w",
      tiers: ["mistral-tiny"],
      rpm: 1000,
      tpm: 1_000_000,
      monthly_budget_micros: budgetMicros,
    }),
  });
  const { key } = (await res.json()) as { key: string };
  return (await lookupAccount(env.DB, key))!;
}

let n = 0;
function report(account: Account, requestId: string, over: Partial<Report> = {}): Report {
  const now = Date.now();
  return {
    id: `rec-${++n}`,
    request_id: requestId,
    kind: "generate",
    key_id: account.keyId,
    tier: "mistral-tiny",
    model: "tiny",
    prompt_tokens: 10,
    cached_tokens: 0,
    completion_tokens: 5,
    finish_reason: "stop",
    started_at: now,
    ended_at: now,
    backend: "test:1",
    ...over,
  };
}

const deliver = (records: Report[], headers: Record<string, string> = USAGE) =>
  SELF.fetch(`${BASE}/internal/usage`, { method: "POST", headers, body: JSON.stringify({ records }) });

async function admitted(account: Account, pricing = TINY, maxCompletionTokens = 100): Promise<string> {
  const requestId = `req_${crypto.randomUUID().replaceAll("-", "")}`;
  await admit(env, account, { requestId, model: "mistral-tiny", pricing, promptTokens: 10, maxCompletionTokens });
  return requestId;
}

const workerSettle = (
  requestId: string,
  completionTokens: number,
  status: UsageStatus = "ok",
  pricing = TINY,
): SettleRequest => ({
  requestId,
  model: "mistral-tiny",
  pricing,
  promptTokens: 10,
  cachedTokens: 0,
  completionTokens,
  status,
  startedAt: Date.now(),
  endedAt: Date.now(),
});

interface Row {
  status: string;
  prompt_tokens: number;
  completion_tokens: number;
  cost: string;
  reconciled: string;
  backend_reported_at: number | null;
}
const rows = async (requestId: string) =>
  (
    await env.DB.prepare(
      "SELECT *, CAST(cost_units AS TEXT) AS cost, CAST(reconciled_units AS TEXT) AS reconciled FROM usage_records WHERE request_id = ?",
    )
      .bind(requestId)
      .all<Row>()
  ).results;
const status = (account: Account) => limiterFor(env, account.keyId).status(account.keyId);
const cost = (p: Pricing, completion: number) =>
  costUnits(p, { promptTokens: 10, cachedTokens: 0, completionTokens: completion }).toString();

describe("POST /internal/usage: never public", () => {
  it("is a 404 while USAGE_TOKEN is unset", async () => {
    const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;
    const req = new Request(`${BASE}/internal/usage`, { method: "POST", headers: USAGE, body: "{}" });
    const res = await createApp().fetch(req, { ...env, USAGE_TOKEN: undefined }, ctx);
    expect(res.status).toBe(404);
    expect(((await res.json()) as ErrorBody).error.type).toBe("not_found_error");
  });

  it("401 without its token, with a wrong one, or with an API key or BACKEND_TOKEN", async () => {
    const account = await newAccount();
    const body = { records: [report(account, "req_x")] };
    const attempts: Array<Record<string, string>> = [
      {},
      { authorization: "Bearer nope" },
      { authorization: "Bearer test-backend-token-0123456789abcdef" },
      { authorization: "Basic dGVzdA==" },
    ];
    for (const headers of attempts) {
      const res = await SELF.fetch(`${BASE}/internal/usage`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(401);
      const e = ((await res.json()) as ErrorBody).error;
      expect(e.type).toBe("authentication_error");
      expect(JSON.stringify(e)).not.toContain("nope");
    }
  });

  it("400 in the OpenAI shape for a body that is not a UsageBatch; nothing is written", async () => {
    const account = await newAccount();
    const bad = [
      { records: [] },
      { records: [{ ...report(account, "req_bad"), prompt_tokens: -1 }] },
      { records: [{ ...report(account, "req bad") }] },
    ];
    for (const b of bad) {
      const res = await SELF.fetch(`${BASE}/internal/usage`, {
        method: "POST",
        headers: USAGE,
        body: JSON.stringify(b),
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as ErrorBody).error.type).toBe("invalid_request_error");
    }
    const notJson = await SELF.fetch(`${BASE}/internal/usage`, { method: "POST", headers: USAGE, body: "{" });
    expect(notJson.status).toBe(400);
    expect(await rows("req_bad")).toHaveLength(0);
  });
});

describe("a request whose worker never settled", () => {
  it("is recovered from the report at the admission price, charged to the budget once, its reservation released", async () => {
    const account = await newAccount();
    const id = await admitted(account, OLD_PRICE);
    expect((await status(account)).reservations).toBe(1);
    const rec = report(account, id, { completion_tokens: 7, cached_tokens: 4, finish_reason: "cancelled" });
    const res = await deliver([rec]);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ acked: [rec.id] });
    const want = costUnits(OLD_PRICE, { promptTokens: 10, cachedTokens: 4, completionTokens: 7 }).toString();
    expect(await rows(id)).toMatchObject([
      { status: "recovered", prompt_tokens: 10, completion_tokens: 7, cost: want, reconciled: "0" },
    ]);
    expect(await status(account)).toMatchObject({ reservations: 0, spentUnits: want });
    // Replays (the backend lost its ack) are acknowledged again and change nothing.
    for (const again of [[rec], [rec, { ...rec, id: "other-record-same-request" }]]) {
      const r2 = await deliver(again);
      expect(((await r2.json()) as { acked: string[] }).acked.sort()).toEqual(again.map((r) => r.id).sort());
    }
    expect(await rows(id)).toMatchObject([{ status: "recovered", cost: want }]);
    expect((await status(account)).spentUnits).toBe(want);
  });

  it("counts against the budget: a recovered spend refuses the next admission", async () => {
    const account = await newAccount(4); // 4 µ€
    const id = await admitted(account, TINY, 4); // reserves 10·0.14 + 4·0.42 = 3.08 µ€
    await deliver([report(account, id, { completion_tokens: 6 })]); // 10·0.14 + 6·0.42 = 3.92 µ€ (the backend's count wins)
    expect((await status(account)).spentUnits).toBe("3920000");
    const e = await admit(env, account, {
      requestId: "req_next",
      model: "mistral-tiny",
      pricing: TINY,
      promptTokens: 1,
      maxCompletionTokens: 1,
    }).then(
      () => null,
      (x: { code?: string }) => x,
    );
    expect(e?.code).toBe("budget_insufficient"); // 0.08 µ€ remain: not spent, but too little for this request
  });

  it("a report naming no key, for a request the ledger does not know, is acknowledged and bills nobody", async () => {
    const account = await newAccount();
    const rec = report(account, "req_nobody", { key_id: null });
    expect(await (await deliver([rec])).json()).toEqual({ acked: [rec.id] });
    expect(await rows("req_nobody")).toHaveLength(0);
  });
});

describe("forged reports: only ids this worker admitted are billed", () => {
  const ADMIN = { authorization: "Bearer test-admin-token-0123456789abcdef" };
  const rejectedCount = async () =>
    (await (await SELF.fetch(`${BASE}/v1/admin/usage/rejected-reports`, { headers: ADMIN })).json()) as {
      count: number;
      data: { request_id: string; key_id: string | null; reason: string }[];
    };

  it("a report for a never-admitted id bills nothing, is acknowledged, logged and counted for operators", async () => {
    const victim = await newAccount();
    const id = await admitted(victim);
    await settle(env, victim, workerSettle(id, 5));
    const before = (await status(victim)).spentUnits;
    const countBefore = (await rejectedCount()).count;
    const errors = vi.spyOn(console, "error");
    const forged = report(victim, "req_doesnotexist1", { completion_tokens: 1_000_000 });
    expect(await (await deliver([forged])).json()).toEqual({ acked: [forged.id] });
    expect(await rows("req_doesnotexist1")).toHaveLength(0);
    expect((await status(victim)).spentUnits).toBe(before);
    const listed = await rejectedCount();
    expect(listed.count).toBe(countBefore + 1);
    expect(listed.data[0]).toMatchObject({
      request_id: "req_doesnotexist1",
      key_id: victim.keyId,
      reason: "request id never admitted by this worker",
    });
    expect(errors.mock.calls.some(([l]) => String(l).includes('"where":"usage_report_rejected"'))).toBe(true);
    errors.mockRestore();
    // Redelivered (at-least-once), the same report is not counted twice.
    await deliver([forged]);
    expect((await rejectedCount()).count).toBe(countBefore + 1);
  });

  it("an id admitted for another key, or refused before any backend, is not billable either", async () => {
    const attacker = await newAccount();
    const victim = await newAccount();
    const id = await admitted(attacker); // in flight: no ledger row yet
    const cross = report(victim, id, { completion_tokens: 50_000 });
    await deliver([cross]);
    expect(await rows(id)).toHaveLength(0);
    expect((await status(victim)).spentUnits).toBe("0");
    // A request refused before any backend has a `rejected` row but no admission: a report cannot bill it.
    const poor = await newAccount(0);
    const refused = `req_${crypto.randomUUID().replaceAll("-", "")}`;
    await admit(env, poor, {
      requestId: refused,
      model: "mistral-tiny",
      pricing: TINY,
      promptTokens: 10,
      maxCompletionTokens: 10,
    }).catch(() => {});
    await new Promise((r) => setTimeout(r, 50));
    await deliver([report(poor, refused, { completion_tokens: 9 })]);
    expect((await rows(refused)).map((r) => [r.status, r.cost])).toEqual([["rejected", "0"]]);
    expect((await status(poor)).spentUnits).toBe("0");
    // The genuine report for the attacker's own admitted id still merges.
    await deliver([report(attacker, id, { completion_tokens: 5 })]);
    expect(await rows(id)).toMatchObject([{ status: "recovered", cost: cost(TINY, 5) }]);
  });
});

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
