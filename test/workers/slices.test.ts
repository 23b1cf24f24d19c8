/**
 * Budgets reserved as tokens stream (worker/billing/slices.ts): admission reserves the prompt and the
 * first slice, KeyLimiter.extend adds slices, and a refused slice ends the generation as "length" with
 * `budget_exhausted: true`, never more than one slice past the budget.
 */
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { lookupAccount } from "../../worker/billing/keys";
import { admit, limiterFor, settle } from "../../worker/billing/meter";
import { microsToUnits, reservationUnits } from "../../worker/billing/money";
import { COMPLETION_SLICE_TOKENS, SlicedReservation } from "../../worker/billing/slices";
import { FakeBackend } from "./chat-fake-backend";
import { PRICE, chat, sseEvents, usageRecord } from "./chat-harness";
import { createKey } from "../../worker/billing/keys";
import { applyChatTemplate } from "../../worker/tokenizer";

let backend: FakeBackend;
beforeEach(() => {
  backend = new FakeBackend();
  backend.install();
});

let n = 0;
async function keyWithBudget(micros: number) {
  const key = `sk-slices-${Date.now()}-${n++}-${"y".repeat(24)}`;
  const row = await createKey(env.DB, key, {
    name: "s",
    tiers: ["mistral-tiny", "mistral-small"],
    rpm: 10_000,
    tpm: 10_000_000,
    monthly_budget_micros: micros,
  });
  return { key, id: row.id, account: (await lookupAccount(env.DB, key))! };
}

const messages = [{ role: "user" as const, content: "Hi there" }];
const promptTokens = applyChatTemplate(messages).length;
const SLICE_UNITS = reservationUnits(PRICE, 0, COMPLETION_SLICE_TOKENS);

describe("sliced budget reservations", () => {
  it("a key with 1000 µ€ left can make a small request without max_tokens (the whole context is not reserved)", async () => {
    const { key } = await keyWithBudget(1000);
    // mistral-small here: a 4096-token context at 0.42 µ€ per output token would reserve ~1720 µ€.
    for (const h of ["r1.test"]) backend.set(h, { kind: "ok", text: "short answer" });
    const r = await chat(key, { model: "mistral-small" });
    const j = await r.json();
    expect(r.res.status, JSON.stringify(j)).toBe(200);
    expect(j.choices[0].finish_reason).toBe("stop");
    expect(j.budget_exhausted).toBeUndefined();
  });

  it("a refused slice stops the generation: finish_reason length, budget_exhausted, the budget overshot by less than a slice", async () => {
    const budgetMicros = 120; // the prompt plus about 250 completion tokens at 0.42 µ€
    const { key, account } = await keyWithBudget(budgetMicros);
    // Paced (1 ms a token) like a replica, so the cancel lands while it still has tokens to go.
    backend.set("r1.test", { kind: "ok", text: "x".repeat(1500), chunk: 1, lag: 2, delayMs: 1 });
    const r = await chat(key, { model: "mistral-small" });
    const j = await r.json();
    expect(r.res.status, JSON.stringify(j)).toBe(200);
    expect(j.choices[0].finish_reason).toBe("length");
    expect(j.budget_exhausted).toBe(true);
    const id = r.res.headers.get("x-request-id")!;
    const truth = backend.finished.get(id)!;
    expect(truth.finish).toBe("cancelled");
    expect(truth.completion).toBeLessThan(1500);
    // Every token the replica generated is billed, once.
    expect(await usageRecord(id)).toMatchObject({ status: "ok", completion_tokens: truth.completion });
    const status = await limiterFor(env, account.keyId).status();
    expect(status.reservations).toBe(0);
    expect(BigInt(status.spentUnits)).toBe(
      BigInt(promptTokens) * BigInt(PRICE.input) + BigInt(truth.completion) * BigInt(PRICE.output),
    );
    expect(BigInt(status.spentUnits)).toBeLessThanOrEqual(microsToUnits(budgetMicros) + SLICE_UNITS);
    // What was delivered is what a slice boundary allowed: the text stops inside the reservation.
    expect(j.choices[0].message.content.length).toBeLessThanOrEqual(truth.completion);
    expect(j.usage.completion_tokens).toBe(truth.completion);
  });

  it("streaming: the chunk with finish_reason length carries budget_exhausted and the usage", async () => {
    const { key } = await keyWithBudget(60);
    backend.set("r1.test", { kind: "ok", text: "y".repeat(800), chunk: 1, delayMs: 1 });
    const r = await chat(key, { model: "mistral-small", stream: true, stream_options: { include_usage: true } });
    const events = sseEvents(await r.text()) as any[];
    expect(events.at(-1)).toBe("[DONE]");
    const last = events.at(-3);
    expect(last.choices[0].finish_reason).toBe("length");
    expect(last.budget_exhausted).toBe(true);
    expect(last.usage.completion_tokens).toBeLessThan(800);
    expect(last.usage.cost_micros).toBeGreaterThan(0);
  });

  it("a max_tokens the budget covers is served whole: the last top-up asks only for what is left of it", async () => {
    // The budget covers the prompt and 100 completion tokens, but not a second whole slice (128).
    const units = BigInt(promptTokens) * BigInt(PRICE.input) + 100n * BigInt(PRICE.output);
    const budgetMicros = Number((units + 999_999n) / 1_000_000n) + 1;
    expect(microsToUnits(budgetMicros)).toBeLessThan(units + 28n * BigInt(PRICE.output));
    const { key, account } = await keyWithBudget(budgetMicros);
    backend.set("r1.test", { kind: "ok", text: "w".repeat(400), chunk: 1 });
    const r = await chat(key, { model: "mistral-small", max_tokens: 100 });
    const j = await r.json();
    expect(r.res.status, JSON.stringify(j)).toBe(200);
    expect(j.budget_exhausted).toBeUndefined();
    expect(j.choices[0].finish_reason).toBe("length");
    expect(j.usage.completion_tokens).toBe(100);
    expect((await limiterFor(env, account.keyId).status()).reservations).toBe(0);
  });

  it("under a large budget a long answer runs to max_tokens, a replica faster than the limiter only pauses", async () => {
    const { key, account } = await keyWithBudget(1_000_000);
    // Unpaced: the fake generates as fast as it is read, far ahead of each top-up's round trip.
    backend.set("r1.test", { kind: "ok", text: "z".repeat(400), chunk: 1 });
    const r = await chat(key, { model: "mistral-small", max_tokens: 300 });
    const j = await r.json();
    expect(j.choices[0].finish_reason).toBe("length");
    expect(j.budget_exhausted).toBeUndefined();
    expect(j.usage.completion_tokens).toBe(300);
    const status = await limiterFor(env, account.keyId).status();
    expect(status.reservations).toBe(0);
    expect(BigInt(status.spentUnits)).toBe(BigInt(promptTokens) * BigInt(PRICE.input) + 300n * BigInt(PRICE.output));
  });
});

describe("KeyLimiter.extend", () => {
  it("grants a slice only while the budget covers it, and never after the request settled", async () => {
    const { account } = await keyWithBudget(100); // 100 µ€ = 1e8 units
    const stub = limiterFor(env, account.keyId);
    const pricing = PRICE;
    await admit(env, account, {
      requestId: "ext-1",
      model: "mistral-small",
      pricing,
      promptTokens: 10,
      maxCompletionTokens: 1000,
      budgetCompletionTokens: 64,
    });
    const reservedAtAdmit = reservationUnits(pricing, 10, 64);
    expect(BigInt((await stub.status()).reservedUnits)).toBe(reservedAtAdmit);
    // 1e8 units of budget, 1.4e6 + 64 × 4.2e5 = 28.28e6 reserved: two more slices fit (26.88e6 each), a third does not.
    expect(await stub.extend({ requestId: "ext-1", budgetMicros: 100, units: SLICE_UNITS.toString() })).toBe(true);
    expect(await stub.extend({ requestId: "ext-1", budgetMicros: 100, units: SLICE_UNITS.toString() })).toBe(true);
    expect(await stub.extend({ requestId: "ext-1", budgetMicros: 100, units: SLICE_UNITS.toString() })).toBe(false);
    expect(BigInt((await stub.status()).reservedUnits)).toBe(reservedAtAdmit + 2n * SLICE_UNITS);
    await settle(env, account, {
      requestId: "ext-1",
      model: "mistral-small",
      pricing,
      promptTokens: 10,
      cachedTokens: 0,
      completionTokens: 5,
      status: "ok",
      startedAt: Date.now(),
      endedAt: Date.now(),
    });
    expect(await stub.extend({ requestId: "ext-1", budgetMicros: 100, units: "1" })).toBe(false);
    expect(await stub.extend({ requestId: "never-admitted", budgetMicros: 100, units: "1" })).toBe(false);
  });

  it("measures the top-up round trip (README 'Budget slices'): printed, not asserted", async () => {
    const { account } = await keyWithBudget(1_000_000_000);
    const stub = limiterFor(env, account.keyId);
    await admit(env, account, {
      requestId: "ext-m",
      model: "mistral-small",
      pricing: PRICE,
      promptTokens: 10,
      maxCompletionTokens: 100_000,
      budgetCompletionTokens: 64,
    });
    const times: number[] = [];
    // At most 200 round trips or 2 s of them: on a loaded machine 200 took longer than the test's 5 s.
    const until = performance.now() + 2000;
    for (let i = 0; i < 200 && performance.now() < until; i++) {
      const t0 = performance.now();
      expect(
        await stub.extend({ requestId: "ext-m", budgetMicros: 1_000_000_000, units: SLICE_UNITS.toString() }),
      ).toBe(true);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    console.log(
      JSON.stringify({
        measure: "KeyLimiter.extend round trip (ms)",
        n: times.length,
        p50: times[Math.floor(times.length * 0.5)],
        p99: times[Math.floor(times.length * 0.99)],
        max: times.at(-1),
      }),
    );
  });
});

/** Lets pending promise callbacks run (one macrotask turn, not a wait for time to pass). */
const tick = () => new Promise((r) => setTimeout(r, 0));

describe("SlicedReservation", () => {
  it("tops up half a slice ahead, stops at the reservation once refused, and stalls half a slice past it while a top-up is out", async () => {
    const answers: Array<(ok: boolean) => void> = [];
    const s = new SlicedReservation({ maxTokens: 1000, slice: 64, extend: () => new Promise((r) => answers.push(r)) });
    expect(s.reserved).toBe(64);
    for (let g = 1; g < 32; g++) expect(s.allows(g)).toBe(true);
    expect(answers).toHaveLength(0);
    expect(s.allows(32)).toBe(true); // half a slice left: the next one is asked for
    expect(answers).toHaveLength(1);
    answers[0](true);
    await tick();
    expect(s.reserved).toBe(128);
    for (let g = 33; g < 96; g++) expect(s.allows(g)).toBe(true);
    expect(s.allows(96)).toBe(true);
    expect(answers).toHaveLength(2);
    answers[1](false);
    await tick();
    expect(s.allows(128)).toBe(true); // what is reserved may still be used
    expect(s.allows(129)).toBe(false);

    let answer!: (ok: boolean) => void;
    const slow = new SlicedReservation({ maxTokens: 1000, slice: 64, extend: () => new Promise((r) => (answer = r)) });
    for (let g = 1; g < 96; g++) {
      expect(slow.allows(g)).toBe(true);
      expect(slow.stall(g)).toBeNull();
    }
    const stall = slow.stall(96); // never more than half a slice unreserved: wait for the answer
    expect(stall).toBeInstanceOf(Promise);
    answer(true);
    await stall;
    expect(slow.reserved).toBe(128);
    expect(slow.stall(96)).toBeNull();
  });

  it("the last top-up asks for min(slice, max_tokens − reserved), never a whole slice past max_tokens", async () => {
    const asked: number[] = [];
    const s = new SlicedReservation({ maxTokens: 100, slice: 64, extend: async (t) => (asked.push(t), true) });
    for (let g = 1; g <= 40; g++) expect(s.allows(g)).toBe(true);
    await tick();
    expect(asked).toEqual([36]);
    expect(s.reserved).toBe(100);
    for (let g = 41; g <= 100; g++) expect(s.allows(g)).toBe(true);
    expect(asked).toEqual([36]);
  });
});
