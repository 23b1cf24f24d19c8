/**
 * Shared by the usage-witness tests: keys, backend reports, the worker's settle, and reads of the ledger
 * row and the limiter's state for one request.
 */
import { env, SELF } from "cloudflare:test";
import type { UsageRecord as Report } from "../../contract/usage";
import { lookupAccount } from "../../worker/billing/keys";
import { admit, limiterFor } from "../../worker/billing/meter";
import { costUnits } from "../../worker/billing/money";
import type { Account, Pricing, SettleRequest, UsageStatus } from "../../worker/billing/types";

export const BASE = "https://edge.test";
export const TINY = (JSON.parse(env.TIERS) as Record<string, { price: Pricing }>)["mistral-tiny"].price;
/** An admission price that differs from TIERS': a recovered record must be priced with it. */
export const OLD_PRICE: Pricing = { input: 100_000, cached_input: 10_000, output: 300_000 };
export const USAGE = { authorization: "Bearer test-usage-token-0123456789abcdef", "content-type": "application/json" };

export async function newAccount(budgetMicros = 1_000_000_000): Promise<Account> {
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
export function report(account: Account, requestId: string, over: Partial<Report> = {}): Report {
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

export const deliver = (records: Report[], headers: Record<string, string> = USAGE) =>
  SELF.fetch(`${BASE}/internal/usage`, { method: "POST", headers, body: JSON.stringify({ records }) });

export async function admitted(account: Account, pricing = TINY, maxCompletionTokens = 100): Promise<string> {
  const requestId = `req_${crypto.randomUUID().replaceAll("-", "")}`;
  await admit(env, account, { requestId, model: "mistral-tiny", pricing, promptTokens: 10, maxCompletionTokens });
  return requestId;
}

export const workerSettle = (
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

export interface Row {
  status: string;
  prompt_tokens: number;
  completion_tokens: number;
  cost: string;
  reconciled: string;
  backend_reported_at: number | null;
}
export const rows = async (requestId: string) =>
  (
    await env.DB.prepare(
      "SELECT *, CAST(cost_units AS TEXT) AS cost, CAST(reconciled_units AS TEXT) AS reconciled FROM usage_records WHERE request_id = ?",
    )
      .bind(requestId)
      .all<Row>()
  ).results;
export const status = (account: Account) => limiterFor(env, account.keyId).status(account.keyId);
export const cost = (p: Pricing, completion: number) =>
  costUnits(p, { promptTokens: 10, cachedTokens: 0, completionTokens: completion }).toString();
