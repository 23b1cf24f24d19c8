import { env, runDurableObjectAlarm, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { ASK_AFTER_MS } from "../../worker/billing/late-reservations";
import { lookupAccount } from "../../worker/billing/keys";
import type { KeyLimiter } from "../../worker/billing/key-limiter";
import { admit, limiterFor, settle } from "../../worker/billing/meter";
import { formatDuration } from "../../worker/billing/rate";
import type { Account, Pricing } from "../../worker/billing/types";
import { ApiError } from "../../worker/errors";

const TINY = (JSON.parse(env.TIERS) as Record<string, { price: Pricing }>)["mistral-tiny"].price;
let n = 0;
const rid = () => `lim-${++n}-${crypto.randomUUID()}`;

async function newAccount(plan: Record<string, unknown>): Promise<Account> {
  const res = await SELF.fetch("https://edge.test/v1/admin/keys", {
    method: "POST",
    headers: { authorization: "Bearer test-admin-token-0123456789abcdef", "content-type": "application/json" },
    body: JSON.stringify({
      name: "l",
      tiers: ["mistral-tiny", "mistral-small"],
      monthly_budget_micros: 1_000_000_000,
      ...plan,
    }),
  });
  const { key } = (await res.json()) as { key: string };
  return (await lookupAccount(env.DB, key))!;
}

const tiny = (promptTokens: number, maxCompletionTokens: number, model = "mistral-tiny") => ({
  requestId: rid(),
  model,
  pricing: TINY,
  promptTokens,
  maxCompletionTokens,
});

async function refusal(p: Promise<unknown>): Promise<ApiError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ApiError);
  return e as ApiError;
}

describe("requests per minute", () => {
  it("admits rpm requests, then 429 rate_limit_error with Retry-After, retry-after-ms and x-ratelimit-* headers", async () => {
    const account = await newAccount({ rpm: 3, tpm: 100_000 });
    const first = await admit(env, account, tiny(10, 10));
    expect(first.headers).toMatchObject({
      "x-ratelimit-limit-requests": "3",
      "x-ratelimit-remaining-requests": "2",
      "x-ratelimit-limit-tokens": "100000",
      "x-ratelimit-remaining-tokens": "99980",
    });
    expect(first.headers["x-ratelimit-reset-requests"]).toMatch(/^\d+(\.\d+)?m?s$/);
    expect(first.headers["x-ratelimit-reset-tokens"]).toMatch(/^\d+(\.\d+)?m?s$/);
    await admit(env, account, tiny(10, 10));
    const third = await admit(env, account, tiny(10, 10));
    expect(third.headers["x-ratelimit-remaining-requests"]).toBe("0");

    const e = await refusal(admit(env, account, tiny(10, 10)));
    expect(e.status).toBe(429);
    expect(e.body().error).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded" });
    expect(e.message).toContain("requests per minute");
    const ms = Number(e.headers["retry-after-ms"]);
    expect(ms).toBeGreaterThan(19_000); // one request refills every 20 s at 3 rpm
    expect(ms).toBeLessThanOrEqual(20_000);
    expect(e.headers["retry-after"]).toBe(String(Math.ceil(ms / 1000)));
    expect(e.headers["x-ratelimit-remaining-requests"]).toBe("0");
    expect(e.headers["x-ratelimit-limit-requests"]).toBe("3");

    // Limits are per tier: another tier of the same key is not affected.
    await expect(admit(env, account, tiny(10, 10, "mistral-small"))).resolves.toBeTruthy();
  });

  it("the 429 reaches HTTP clients through the app's error renderer with its headers", async () => {
    const { createApp } = await import("../../worker/app");
    const account = await newAccount({ rpm: 1, tpm: 100_000 });
    await admit(env, account, tiny(1, 1));
    const e = await refusal(admit(env, account, tiny(1, 1)));
    const app = createApp();
    app.get("/probe-429", () => {
      throw e;
    });
    const res = await app.request("/probe-429", {}, env);
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(res.headers.get("retry-after-ms")).toMatch(/^\d+$/);
    expect(res.headers.get("x-ratelimit-remaining-requests")).toBe("0");
    expect(await res.json()).toEqual({
      error: { message: e.message, type: "rate_limit_error", param: null, code: "rate_limit_exceeded" },
    });
  });
});

describe("tokens per minute", () => {
  it("reserves prompt + max completion, refuses over TPM, refunds unused tokens on settle", async () => {
    const account = await newAccount({ rpm: 1000, tpm: 1000 });
    // A fixed clock in the key's limiter: no refill between the calls, however slow the machine.
    const t = Date.now();
    await runInDurableObject(limiterFor(env, account.keyId), (o: unknown) => void ((o as KeyLimiter).clock = () => t));
    const a = tiny(100, 500);
    await admit(env, account, a);
    const e = await refusal(admit(env, account, tiny(100, 500)));
    expect(e.status).toBe(429);
    expect(e.message).toContain("tokens per minute");
    expect(e.headers["retry-after-ms"]).toBe("12000"); // 200 tokens short at 1000/min: 12 s exactly (fixed clock)
    expect(e.headers["x-ratelimit-remaining-tokens"]).toBe("400");

    // The first request used only 100 + 50: 450 tokens come back.
    await settle(env, account, {
      ...a,
      cachedTokens: 0,
      completionTokens: 50,
      status: "ok",
      startedAt: Date.now(),
      endedAt: Date.now(),
    });
    const ok = await admit(env, account, tiny(100, 500));
    expect(ok.headers["x-ratelimit-remaining-tokens"]).toBe("250");
  });

  it("a request larger than the whole TPM is refused as request_too_large", async () => {
    const account = await newAccount({ rpm: 10, tpm: 1000 });
    const e = await refusal(admit(env, account, tiny(600, 401)));
    expect(e.status).toBe(429);
    expect(e.code).toBe("request_too_large");
    expect(e.headers["retry-after"]).toBeUndefined();
  });

  it("a plan change (PATCH) applies to the next admission", async () => {
    const account = await newAccount({ rpm: 1, tpm: 1000 });
    await admit(env, account, tiny(1, 1));
    await expect(admit(env, account, tiny(1, 1))).rejects.toMatchObject({ status: 429 });
    const ok = await admit(env, { ...account, rpm: 600 }, tiny(1, 1)); // the account as read after a PATCH
    expect(ok.headers["x-ratelimit-limit-requests"]).toBe("600");
  });
});

describe("tier outside the plan", () => {
  it("admit refuses it with 404 model_not_found (as for an unknown model) before touching any limit", async () => {
    const account = await newAccount({ rpm: 1, tpm: 1000, tiers: ["mistral-tiny"] });
    const e = await refusal(admit(env, account, tiny(1, 1, "mistral-medium")));
    expect(e.status).toBe(404);
    expect(e.code).toBe("model_not_found");
    await expect(admit(env, account, tiny(1, 1))).resolves.toBeTruthy();
  });
});

describe("reservations that are never settled", () => {
  it("are not released by the alarm while no backend can vouch for them; a late settle charges exactly once and releases", async () => {
    const account = await newAccount({ rpm: 100, tpm: 1000, monthly_budget_micros: 1 });
    const a = tiny(1, 1); // reserves 140000 + 420000 = 560000 units = 0.56 µ€ of a 1 µ€ budget
    await admit(env, account, a);
    const held = await refusal(admit(env, account, tiny(1, 1)));
    expect(held).toMatchObject({ status: 429, code: "budget_held" });
    expect(held.headers["retry-after"]).toBe("1"); // only in-flight reservations block it

    const stub = limiterFor(env, account.keyId);
    await runInDurableObject(stub, (_o: unknown, state: DurableObjectState) => {
      state.storage.sql.exec("UPDATE requests SET created_ms = created_ms - ?", ASK_AFTER_MS + 1000);
    });
    // The tier's backend cannot be reached: nobody can say the request was never seen, so the reservation
    // holds (worker/billing/late-reservations.ts).
    const down = vi.spyOn(globalThis, "fetch").mockRejectedValue(new Error("connection refused"));
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(down).toHaveBeenCalled();
    down.mockRestore();
    expect(await stub.status()).toMatchObject({ reservations: 1, reservedUnits: "560000", spentUnits: "0" });

    // The lost request's settle finally arrives: charged once, however often it is repeated.
    const late = {
      ...a,
      cachedTokens: 0,
      completionTokens: 1,
      status: "ok" as const,
      startedAt: Date.now(),
      endedAt: Date.now(),
    };
    await settle(env, account, late);
    await settle(env, account, late);
    expect(await stub.status()).toMatchObject({ reservations: 0, spentUnits: "560000" });
    // 0.44 µ€ remain, the request needs 0.56: refused for good (no Retry-After, x-should-retry: false), and
    // not insufficient_quota: the budget is not spent.
    const broke = await refusal(admit(env, account, tiny(1, 1)));
    expect(broke).toMatchObject({ status: 400, code: "budget_insufficient" });
    expect(broke.headers["retry-after"]).toBeUndefined();
    expect(broke.headers["x-should-retry"]).toBe("false");
  });
});

describe("header formats", () => {
  it("durations look like OpenAI's", () => {
    expect(formatDuration(120)).toBe("120ms");
    expect(formatDuration(1500)).toBe("1.5s");
    expect(formatDuration(60_000)).toBe("1m0s");
    expect(formatDuration(6 * 60_000 + 30_500)).toBe("6m30.5s");
  });
});
