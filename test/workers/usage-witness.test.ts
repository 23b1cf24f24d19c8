/**
 * POST /internal/usage (worker/billing/report-merge.ts): never public (auth, validation), a request whose
 * worker never settled recovered from the backend's report, and forged reports billing nothing. The merge
 * of the two witnesses: usage-witness-merge.test.ts.
 */
import { env, SELF } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createApp } from "../../worker/app";
import { admit, settle } from "../../worker/billing/meter";
import { costUnits } from "../../worker/billing/money";
import type { ErrorBody } from "../../worker/errors";
import {
  BASE,
  OLD_PRICE,
  TINY,
  USAGE,
  admitted,
  cost,
  deliver,
  newAccount,
  report,
  rows,
  status,
  workerSettle,
} from "./usage-witness-harness";

afterEach(() => vi.restoreAllMocks());

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
