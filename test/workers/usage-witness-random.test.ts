/**
 * Seeded: hundreds of requests whose worker settle (W) and backend report (B) arrive in a
 * random order, duplicated, concurrently, in random batches, with some workers dead (no W) and the
 * limiter's storage wiped midway. Invariant per request id: one row, billed = the larger of the two
 * witnesses' costs, exactly once (unless the wipe lost its only proof of admission: then its reports
 * are refused and counted, never billed); and the key's budget equals the ledger's sum.
 */
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { UsageRecord as Report } from "../../contract/usage";
// The engine's seeded PRNG (pure, no imports), so a failure replays exactly.
import { mulberry32 as rng } from "../../gpu-backend/engine/rng";
import { lookupAccount } from "../../worker/billing/keys";
import { admit, limiterFor, settle } from "../../worker/billing/meter";
import { costUnits } from "../../worker/billing/money";
import type { Account, Pricing } from "../../worker/billing/types";
import { newKey } from "./chat-harness";

const TINY = (JSON.parse(env.TIERS) as Record<string, { price: Pricing }>)["mistral-tiny"].price;
const SEED = 14;
const REQUESTS = 240;

interface Plan {
  id: string;
  /** The worker's count (null: the worker died before settling). */
  w: { completion: number; cached: number } | null;
  /** The backend's count (null: its report never came), at least what the worker saw. */
  b: { completion: number; cached: number } | null;
}

type Op = { kind: "W"; plan: Plan } | { kind: "B"; plan: Plan; dup: number };

describe("randomized interleaving of settles and reports", () => {
  it(`seed ${SEED}, ${REQUESTS} requests: per request id billed = generated, exactly once`, async () => {
    const rand = rng(SEED);
    const int = (n: number) => Math.floor(rand() * n);
    const account: Account = (await lookupAccount(env.DB, (await newKey(["mistral-tiny"])).key))!;

    const plans: Plan[] = [];
    for (let i = 0; i < REQUESTS; i++) {
      const id = `req_rand${SEED}x${i}`;
      await admit(env, account, {
        requestId: id,
        model: "mistral-tiny",
        pricing: TINY,
        promptTokens: 10,
        maxCompletionTokens: 100,
      });
      const seen = int(40);
      const w = rand() < 0.3 ? null : { completion: seen, cached: rand() < 0.5 ? 0 : int(10) };
      const generated = seen + (rand() < 0.3 ? int(20) : 0);
      const b = w !== null && rand() < 0.15 ? null : { completion: generated, cached: w?.cached ?? int(10) };
      plans.push({ id, w, b });
    }
    const ops: Op[] = [];
    let recordId = 0;
    for (const p of plans) {
      if (p.w) for (let k = 1 + (rand() < 0.2 ? 1 : 0); k > 0; k--) ops.push({ kind: "W", plan: p });
      if (p.b)
        for (let k = 1 + (rand() < 0.3 ? 1 : 0) + (rand() < 0.1 ? 1 : 0); k > 0; k--)
          ops.push({ kind: "B", plan: p, dup: ++recordId });
    }
    for (let i = ops.length - 1; i > 0; i--) {
      const j = int(i + 1);
      [ops[i], ops[j]] = [ops[j]!, ops[i]!];
    }

    const now = Date.now();
    const report = (op: Extract<Op, { kind: "B" }>): Report => ({
      id: `r${op.dup}`,
      request_id: op.plan.id,
      kind: "generate",
      key_id: account.keyId,
      tier: "mistral-tiny",
      model: "tiny",
      prompt_tokens: 10,
      cached_tokens: op.plan.b!.cached,
      completion_tokens: op.plan.b!.completion,
      finish_reason: "cancelled",
      started_at: now,
      ended_at: now,
      backend: "rand:1",
    });
    const run = async (unit: Op | Op[]) => {
      const op = !Array.isArray(unit) && unit.kind === "B" ? [unit] : unit;
      if (Array.isArray(op)) {
        const r = await SELF.fetch("https://edge.test/internal/usage", {
          method: "POST",
          headers: { authorization: "Bearer test-usage-token-0123456789abcdef", "content-type": "application/json" },
          body: JSON.stringify({ records: op.map((o) => report(o as Extract<Op, { kind: "B" }>)) }),
        });
        expect(r.status).toBe(200);
        expect(((await r.json()) as { acked: string[] }).acked).toHaveLength(op.length);
        return;
      }
      const w = (op as Extract<Op, { kind: "W" }>).plan;
      await settle(env, account, {
        requestId: w.id,
        model: "mistral-tiny",
        pricing: TINY,
        promptTokens: 10,
        cachedTokens: w.w!.cached,
        completionTokens: w.w!.completion,
        status: "cancelled",
        startedAt: now,
        endedAt: now,
      });
    };

    const wipeAt = Math.floor(ops.length / 2);
    let wipedAt = ops.length;
    let at = 0;
    let wiped = false;
    while (at < ops.length) {
      if (!wiped && at >= wipeAt) {
        // The limiter loses its storage mid-run: it must rebuild from the ledger and still bill once.
        await runInDurableObject(limiterFor(env, account.keyId), (_o: unknown, state: DurableObjectState) => {
          for (const t of ["requests", "spend", "periods", "buckets", "meta"])
            state.storage.sql.exec(`DELETE FROM ${t}`);
        });
        wiped = true;
        wipedAt = at;
      }
      // A group of 1-8 operations runs concurrently; consecutive reports in it go as one batch, sometimes.
      const group = ops.slice(at, at + 1 + int(8));
      at += group.length;
      const reports = group.filter((o) => o.kind === "B");
      const batched =
        rand() < 0.5 && reports.length > 1 && new Set(reports.map((o) => o.plan.id)).size === reports.length;
      const units: Array<Op | Op[]> = batched ? [...group.filter((o) => o.kind === "W"), reports] : group;
      await Promise.all(units.map(run));
    }

    const { results } = await env.DB.prepare(
      "SELECT request_id, status, completion_tokens, cached_tokens, CAST(cost_units AS TEXT) AS cost FROM usage_records WHERE key_id = ?",
    )
      .bind(account.keyId)
      .all<{ request_id: string; status: string; completion_tokens: number; cached_tokens: number; cost: string }>();
    const byId = new Map(results.map((r) => [r.request_id, r]));
    // The wipe loses the admissions the limiter held: after it, a report that arrives before its worker's
    // settle (and before any earlier report made a row) has nothing left to prove the id was admitted, so
    // it is refused and counted (GET /v1/admin/usage/rejected-reports), never billed on its word alone.
    const { results: refusedRows } = await env.DB.prepare(
      "SELECT DISTINCT request_id FROM rejected_usage_reports WHERE key_id = ?",
    )
      .bind(account.keyId)
      .all<{ request_id: string }>();
    const refused = new Set(refusedRows.map((r) => r.request_id));
    const index = new Map(plans.map((p) => [p.id, p]));
    for (const id of refused)
      expect(
        ops.some((o, i) => o.plan === index.get(id) && o.kind === "B" && i >= wipedAt),
        `${id} refused without a report after the wipe`,
      ).toBe(true);
    expect(refused.size).toBeLessThan(REQUESTS / 4);
    let total = 0n;
    for (const p of plans) {
      const row = byId.get(p.id);
      const c = (t: { completion: number; cached: number } | null) =>
        t ? costUnits(TINY, { promptTokens: 10, cachedTokens: t.cached, completionTokens: t.completion }) : -1n;
      // biome-ignore lint/complexity/useMathMinMax: bigints (Math.max throws on them)
      const want = c(p.w) >= c(p.b) ? c(p.w) : c(p.b);
      if (refused.has(p.id)) {
        // Billed the worker's count, or the larger one if an earlier report merged: never more, never twice.
        if (!p.w) expect(row).toBeUndefined();
        else {
          expect(BigInt(row!.cost) >= c(p.w) && BigInt(row!.cost) <= want).toBe(true);
          total += BigInt(row!.cost);
        }
        continue;
      }
      expect({ id: p.id, cost: row?.cost, status: row?.status }).toEqual({
        id: p.id,
        cost: want.toString(),
        status: p.w ? "cancelled" : "recovered",
      });
      total += want;
    }
    const status = await limiterFor(env, account.keyId).status(account.keyId);
    expect(status.spentUnits).toBe(total.toString());
    expect(status.reservations).toBe(0);
  }, 60_000);
});
