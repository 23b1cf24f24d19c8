/**
 * Merging the backend's usage reports (contract/usage.ts) into the ledger: the second witness.
 *
 * The row of a request id is a function of the SET of writes seen, never of their order:
 *   {worker settle W}          -> W's tokens and cost, W's status
 *   {backend report B}         -> B's tokens, priced at the admission price, status `recovered`
 *   {W, B}                     -> W's status; B's tokens and cost if B costs more (the excess is
 *                                 `reconciled_units`), else W's (a tie keeps W's); W's whatever B
 *                                 counts when W is deliveredFinal (a backend failure: only what the
 *                                 client received is billed)
 * Cost is max(cost W, cost B) under one price (or W's when final, whichever write came first): max is commutative, associative and idempotent, so any
 * order, duplicate or replay of the two writes ends in the same row, billed once. The worker's write is
 * ledger.ts's upsert; the report's is REPORT_SQL below. The KeyLimiter charges each id up to the largest
 * cost it is told (KeyLimiter.settle), which is again max: the budget ends equal to the row.
 */
import type { UsageRecord as Report } from "../../contract/usage";
import type { Env } from "../env";
import { dayOf } from "./ledger";
import { limiterFor } from "./meter";
import { costUnits, isValidPricing } from "./money";
import type { LimiterSettleInput, Pricing } from "./types";
import { getTiers } from "../config/tiers";
import { recordRejectedReports } from "./rejected-reports";

/** What the merge needs of a key's limiter: the stub, or the Durable Object itself when it merges. */
export interface LimiterPort {
  admissionPricing(requestIds: string[]): Record<string, Pricing | null> | Promise<Record<string, Pricing | null>>;
  settle(input: LimiterSettleInput): void | Promise<void>;
}

export const stubPort =
  (env: Env) =>
  (keyId: string): LimiterPort =>
    limiterFor(env, keyId);

/**
 * A report merges into a row only once (backend_reported_at): the row then holds B's tokens when B costs
 * more, the excess over the worker's cost as reconciled_units; a new row is `recovered`.
 */
const REPORT_SQL = `INSERT INTO usage_records
  (request_id, key_id, model, day, prompt_tokens, cached_tokens, completion_tokens, cost_units, status, started_at, ended_at, recorded_at,
   reconciled_units, backend_reported_at, price_input, price_cached_input, price_output, updated_at)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'recovered', ?, ?, ?, 0, ?, ?, ?, ?, ?)
  ON CONFLICT (request_id) DO UPDATE SET
    prompt_tokens = IIF(NOT usage_records.delivered_final AND excluded.cost_units > usage_records.cost_units, excluded.prompt_tokens, usage_records.prompt_tokens),
    cached_tokens = IIF(NOT usage_records.delivered_final AND excluded.cost_units > usage_records.cost_units, excluded.cached_tokens, usage_records.cached_tokens),
    completion_tokens = IIF(NOT usage_records.delivered_final AND excluded.cost_units > usage_records.cost_units, excluded.completion_tokens, usage_records.completion_tokens),
    reconciled_units = IIF(NOT usage_records.delivered_final AND excluded.cost_units > usage_records.cost_units, excluded.cost_units - usage_records.cost_units, 0),
    cost_units = IIF(usage_records.delivered_final, usage_records.cost_units, MAX(excluded.cost_units, usage_records.cost_units)),
    backend_reported_at = excluded.backend_reported_at,
    updated_at = excluded.updated_at
  WHERE usage_records.backend_reported_at IS NULL
  RETURNING request_id, CAST(cost_units AS TEXT) AS cost_units`;

interface Existing {
  request_id: string;
  key_id: string;
  model: string;
  status: string;
  cost_units: string;
  price_input: number | null;
  price_cached_input: number | null;
  price_output: number | null;
}

function rowPricing(r: Existing | undefined): Pricing | null {
  if (!r || r.price_input === null || r.price_cached_input === null || r.price_output === null) return null;
  return { input: r.price_input, cached_input: r.price_cached_input, output: r.price_output };
}

/**
 * Merges reports; resolves to the record ids whose merge is committed (to acknowledge). A record that
 * cannot be priced (its tier unknown here and its admission price forgotten) is left unacknowledged, so the
 * backend keeps it; one that names no key and matches no row is acknowledged and logged (nobody to bill).
 */
export async function mergeReports(
  env: Env,
  reports: Report[],
  limiterOf: (keyId: string) => LimiterPort,
  now = Date.now(),
): Promise<string[]> {
  const ids = [...new Set(reports.map((r) => r.request_id))];
  const { results } = await env.DB.prepare(
    `SELECT request_id, key_id, model, status, CAST(cost_units AS TEXT) AS cost_units, price_input, price_cached_input, price_output
     FROM usage_records WHERE request_id IN (SELECT value FROM json_each(?))`,
  )
    .bind(JSON.stringify(ids))
    .all<Existing>();
  const existing = new Map(results.map((r) => [r.request_id, r]));

  // The limiters' record of admission (its price), for reports whose id has no ledger row the worker wrote
  // (none, or a `rejected` one: refused before any backend) or a row from before prices were kept.
  const askByKey = new Map<string, string[]>();
  for (const r of reports) {
    const row = existing.get(r.request_id);
    const key = row?.key_id ?? r.key_id;
    if (key && (!rowPricing(row) || row?.status === "rejected"))
      askByKey.set(key, [...(askByKey.get(key) ?? []), r.request_id]);
  }
  const admitted = new Map<string, Pricing | null>();
  await Promise.all(
    [...askByKey].map(async ([key, list]) => {
      for (const [id, p] of Object.entries(await limiterOf(key).admissionPricing(list))) admitted.set(id, p);
    }),
  );

  let tiers: ReturnType<typeof getTiers> | null = null;
  try {
    tiers = getTiers(env.TIERS);
  } catch {
    /* priced from rows and limiters only */
  }
  const acked: string[] = [];
  const merges: Array<{ report: Report; keyId: string; tier: string; previous: string; stmt: D1PreparedStatement }> =
    [];
  const neverAdmitted: Report[] = [];
  for (const r of reports) {
    const row = existing.get(r.request_id);
    // Only an id this worker admitted may be billed: a ledger row it wrote for a request that reached a
    // backend, or a reservation its limiter holds. Anything else (a forged id, another key's id, a request
    // refused before any backend) is refused, logged and counted; acknowledged so it is not redelivered.
    if ((!row || row.status === "rejected") && !admitted.get(r.request_id)) {
      neverAdmitted.push(r);
      acked.push(r.id);
      continue;
    }
    const keyId = row?.key_id ?? r.key_id;
    const tier = row?.model ?? r.tier;
    if (!keyId || !tier) {
      console.error(
        JSON.stringify({
          level: "error",
          where: "usage_report",
          request_id: r.request_id,
          error: "report names no key or tier; not billable",
        }),
      );
      acked.push(r.id);
      continue;
    }
    // The price at admission: the row's, else the limiter's record of it, else the tier's price now.
    const pricing = rowPricing(row) ?? admitted.get(r.request_id) ?? tiers?.get(tier)?.pricing ?? null;
    if (!pricing || !isValidPricing(pricing)) {
      console.error(
        JSON.stringify({
          level: "error",
          where: "usage_report",
          request_id: r.request_id,
          error: `no price for tier '${tier}'; kept by the backend`,
        }),
      );
      continue;
    }
    const prompt = r.prompt_tokens;
    const cached = Math.min(r.cached_tokens, prompt);
    const cost = costUnits(pricing, {
      promptTokens: prompt,
      cachedTokens: cached,
      completionTokens: r.completion_tokens,
    });
    const startedAt = r.started_at;
    const stmt = env.DB.prepare(REPORT_SQL).bind(
      r.request_id,
      keyId,
      tier,
      dayOf(startedAt),
      prompt,
      cached,
      r.completion_tokens,
      cost.toString(),
      startedAt,
      Math.max(startedAt, r.ended_at),
      now,
      now,
      pricing.input,
      pricing.cached_input,
      pricing.output,
      now,
    );
    merges.push({ report: r, keyId, tier, previous: row?.cost_units ?? "0", stmt });
  }
  await recordRejectedReports(env.DB, neverAdmitted, now);
  if (merges.length === 0) return acked;

  // One transaction: every merge of the batch commits, or none does (and none is acknowledged).
  const out = await env.DB.batch<{ request_id: string; cost_units: string }>(merges.map((m) => m.stmt));
  await Promise.all(
    merges.map(async (m, i) => {
      const changed = out[i]!.results[0];
      const row = existing.get(m.report.request_id);
      // The limiter hears of a new or raised cost; and again for a recovered row (idempotent: charges up to
      // the max), in case the first delivery's limiter call was lost.
      if (
        changed
          ? row !== undefined && row.status !== "recovered" && changed.cost_units === row.cost_units
          : row?.status !== "recovered"
      )
        return;
      const units = changed?.cost_units ?? row!.cost_units;
      const r = m.report;
      await settleLimiter(env, limiterOf(m.keyId), {
        keyId: m.keyId,
        requestId: r.request_id,
        tier: m.tier,
        tokens: r.prompt_tokens + r.completion_tokens,
        units,
        previousUnits: m.previous,
        startedAt: r.started_at,
      });
    }),
  );
  for (const m of merges) acked.push(m.report.id);
  return acked;
}

/** The limiter's charge; if it cannot be reached, USAGE_QUEUE replays it (the ledger row is already committed). */
async function settleLimiter(env: Env, port: LimiterPort, s: LimiterSettleInput): Promise<void> {
  try {
    await port.settle(s);
  } catch (err) {
    console.error(
      JSON.stringify({ level: "error", where: "usage_report_limiter", request_id: s.requestId, error: String(err) }),
    );
    const record = {
      requestId: s.requestId,
      keyId: s.keyId,
      model: s.tier,
      promptTokens: s.tokens,
      cachedTokens: 0,
      completionTokens: 0,
      costUnits: s.units,
      status: "recovered" as const,
      startedAt: s.startedAt,
      endedAt: s.startedAt,
      ...(s.previousUnits ? { previousUnits: s.previousUnits } : {}),
    };
    await env.USAGE_QUEUE.send({ v: 1, record, ledger: false, limiter: true });
  }
}
