import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { lookupAccount } from "../../worker/billing/keys";
import { resetDate } from "../../worker/billing/budget";
import { admit, limiterFor, settle } from "../../worker/billing/meter";
import { costUnits, discountUnits, reservationUnits, unitsToMicros } from "../../worker/billing/money";
import type { Account, Pricing } from "../../worker/billing/types";
import { ApiError } from "../../worker/errors";

const TIERS = JSON.parse(env.TIERS) as Record<string, { price: Pricing }>;
const TINY = TIERS["mistral-tiny"].price;
const MEDIUM = TIERS["mistral-medium"].price;

async function newAccount(plan: Record<string, unknown>): Promise<Account> {
  const res = await SELF.fetch("https://edge.test/v1/admin/keys", {
    method: "POST",
    headers: { authorization: "Bearer test-admin-token-0123456789abcdef", "content-type": "application/json" },
    body: JSON.stringify({ name: "b", tiers: ["mistral-tiny", "mistral-medium"], ...plan }),
  });
  const { key } = (await res.json()) as { key: string };
  return (await lookupAccount(env.DB, key))!;
}

describe("pricing arithmetic (exact integers, units of 1e-12 EUR)", () => {
  it("3 tokens of mistral-tiny input = 420000 units = 0.42 µ€", () => {
    const u = costUnits(TINY, { promptTokens: 3, cachedTokens: 0, completionTokens: 0 });
    expect(u).toBe(420_000n);
    // The one rounding rule: exact units rounded UP to whole micro-euros (a non-zero cost never reads 0).
    expect(unitsToMicros(u)).toBe(1);
    expect(unitsToMicros(0n)).toBe(0);
    expect(unitsToMicros(1n)).toBe(1);
    expect(unitsToMicros(1_000_000n)).toBe(1);
    expect(unitsToMicros(1_000_001n)).toBe(2);
    expect(unitsToMicros(121_000_001n)).toBe(122);
  });

  it("a discount applies to exact units and rounds up to a whole unit", () => {
    expect(discountUnits(1_000_001n, 1n, 2n)).toBe(500_001n);
    expect(discountUnits(1_000_000n, 1n, 2n)).toBe(500_000n);
    expect(discountUnits(0n, 1n, 2n)).toBe(0n);
  });

  it("cached prompt tokens are billed at the cached rate only (10% of input), never twice", () => {
    // 1000 prompt tokens of which 600 cached, 10 completion.
    const u = costUnits(TINY, { promptTokens: 1000, cachedTokens: 600, completionTokens: 10 });
    expect(u).toBe(400n * 140_000n + 600n * 14_000n + 10n * 420_000n);
    expect(TINY.cached_input * 10).toBe(TINY.input);
    // All cached costs exactly 10% of all uncached.
    expect(costUnits(TINY, { promptTokens: 777, cachedTokens: 777, completionTokens: 0 }) * 10n).toBe(
      costUnits(TINY, { promptTokens: 777, cachedTokens: 0, completionTokens: 0 }),
    );
    // cached > prompt is clamped, not double-billed.
    expect(costUnits(TINY, { promptTokens: 5, cachedTokens: 9, completionTokens: 0 })).toBe(5n * 14_000n);
  });

  it("large numbers stay exact past 2^53", () => {
    const big = Number.MAX_SAFE_INTEGER; // 2^53 - 1 tokens
    const u = costUnits(MEDIUM, { promptTokens: big, cachedTokens: 1, completionTokens: big });
    expect(u).toBe(BigInt(big - 1) * 2_500_000n + 250_000n + BigInt(big) * 7_500_000n);
    expect(u > BigInt(Number.MAX_SAFE_INTEGER)).toBe(true);
    expect(reservationUnits(MEDIUM, 10, 20)).toBe(10n * 2_500_000n + 20n * 7_500_000n);
    // Odd inputs from a caller never throw: negatives/NaN count as 0, fractions floor.
    expect(costUnits(TINY, { promptTokens: -5, cachedTokens: Number.NaN, completionTokens: 2.9 })).toBe(2n * 420_000n);
  });
});

describe("monthly budget under concurrency", () => {
  it("40 parallel admits against a budget for 3: exactly 3 admitted, spend never exceeds the budget", async () => {
    const perRequest = reservationUnits(MEDIUM, 100, 100); // 1,000,000,000 units = 1000 µ€
    expect(perRequest).toBe(1_000_000_000n);
    const account = await newAccount({ rpm: 1000, tpm: 1_000_000, monthly_budget_micros: 3500 });
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        admit(env, account, {
          requestId: `bud-${i}`,
          model: "mistral-medium",
          pricing: MEDIUM,
          promptTokens: 100,
          maxCompletionTokens: 100,
        }),
      ),
    );
    const admitted = results.filter((r) => r.status === "fulfilled");
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(admitted).toHaveLength(3);
    expect(refused).toHaveLength(37);
    for (const r of refused) {
      const e = r.reason as ApiError;
      expect(e).toBeInstanceOf(ApiError);
      // Nothing is spent yet: the three in flight hold the budget, so waiting may help (Retry-After).
      expect(e.status).toBe(429);
      expect(e.body().error).toMatchObject({ type: "rate_limit_error", code: "budget_held" });
      expect(e.headers["retry-after"]).toBe("1");
    }
    // Settle the admitted ones at their worst case: spend = 3000 µ€ <= 3500.
    await Promise.all(
      admitted.map((r) =>
        settle(env, account, {
          requestId: (r as PromiseFulfilledResult<{ requestId: string }>).value.requestId,
          model: "mistral-medium",
          pricing: MEDIUM,
          promptTokens: 100,
          cachedTokens: 0,
          completionTokens: 100,
          status: "ok",
          startedAt: Date.now(),
          endedAt: Date.now(),
        }),
      ),
    );
    const status = await limiterFor(env, account.keyId).status();
    expect(BigInt(status.spentUnits)).toBe(3n * perRequest);
    expect(BigInt(status.spentUnits) <= 3500n * 1_000_000n).toBe(true);
    expect(status.reservations).toBe(0);

    // 500 µ€ left: a request reserving 1000 is refused outright (no Retry-After: waiting won't help)...
    const e = await admit(env, account, {
      requestId: "bud-x",
      model: "mistral-medium",
      pricing: MEDIUM,
      promptTokens: 100,
      maxCompletionTokens: 100,
    }).catch((x: ApiError) => x);
    // Not spent (500 µ€ remain), so not insufficient_quota: it names what it needs, what remains and what fits.
    expect((e as ApiError).status).toBe(400);
    expect((e as ApiError).code).toBe("budget_insufficient");
    expect((e as ApiError).param).toBe("max_tokens");
    expect((e as ApiError).message).toBe(
      `This request needs 1000 µ€ of budget to start (its 100-token prompt and the first 100 of its max_tokens 100, at mistral-medium prices; in all it can cost up to 1000 µ€); 500 µ€ remain this month (resets on ${resetDate(Date.now())}, UTC). To send it, set max_tokens to 33 or less, or raise the key's monthly budget.`,
    );
    expect((e as ApiError).headers["retry-after"]).toBeUndefined();
    expect((e as ApiError).headers["x-should-retry"]).toBe("false");
    // ...while a smaller one still fits.
    await expect(
      admit(env, account, {
        requestId: "bud-y",
        model: "mistral-medium",
        pricing: MEDIUM,
        promptTokens: 10,
        maxCompletionTokens: 10,
      }),
    ).resolves.toMatchObject({ requestId: "bud-y" });
  });

  it("a settle below the reservation releases the difference for later requests", async () => {
    const account = await newAccount({ rpm: 1000, tpm: 1_000_000, monthly_budget_micros: 1500 });
    const req = { model: "mistral-medium", pricing: MEDIUM, promptTokens: 100, maxCompletionTokens: 100 };
    await admit(env, account, { ...req, requestId: "rel-1" });
    await expect(admit(env, account, { ...req, requestId: "rel-2" })).rejects.toMatchObject({
      status: 429,
      code: "budget_held",
    });
    // rel-1 turns out cheap: 100 prompt tokens, 0 completion = 250 µ€.
    await settle(env, account, {
      ...req,
      requestId: "rel-1",
      cachedTokens: 0,
      completionTokens: 0,
      status: "ok",
      startedAt: Date.now(),
      endedAt: Date.now(),
    });
    await expect(admit(env, account, { ...req, requestId: "rel-3" })).resolves.toBeTruthy();
  });

  it("a budget truly spent is insufficient_quota, with x-should-retry: false and the reset date", async () => {
    const account = await newAccount({ rpm: 1000, tpm: 1_000_000, monthly_budget_micros: 1000 });
    const req = { model: "mistral-medium", pricing: MEDIUM, promptTokens: 100, maxCompletionTokens: 100 };
    await admit(env, account, { ...req, requestId: "spent-1" }); // reserves exactly 1000 µ€
    await settle(env, account, {
      ...req,
      requestId: "spent-1",
      cachedTokens: 0,
      completionTokens: 100,
      status: "ok",
      startedAt: Date.now(),
      endedAt: Date.now(),
    });
    const e = (await admit(env, account, {
      ...req,
      promptTokens: 1,
      maxCompletionTokens: 1,
      requestId: "spent-2",
    }).catch((x: ApiError) => x)) as ApiError;
    expect(e).toBeInstanceOf(ApiError);
    expect(e.body().error).toMatchObject({ type: "insufficient_quota", code: "insufficient_quota" });
    expect(e.status).toBe(429);
    expect(e.headers["x-should-retry"]).toBe("false");
    expect(e.message).toContain("1000 µ€ of 1000 µ€ used this month");
    expect(e.message).toContain(`resets on ${resetDate(Date.now())}`);
  });
});
