/**
 * Two bugs a mutation audit found no workers test for.
 *  - A lost update in the key's RPM/TPM buckets (an `await` between read and write in key-limiter.ts):
 *    many admits in parallel against a small budget must admit exactly what the bucket holds.
 *  - The streaming settle billing without the cached-token discount: the fake backend reports cached
 *    tokens on a stream, and the ledger must charge them at the cached rate, to the unit.
 */
import { env } from "cloudflare:test";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createKey, lookupAccount } from "../../worker/billing/keys";
import { admit } from "../../worker/billing/meter";
import type { Account } from "../../worker/billing/types";
import { applyChatTemplate } from "../../worker/tokenizer";
import { FakeBackend, byteIds } from "./chat-fake-backend";
import { PRICE, chat, newKey, sseEvents, usageRecord } from "./chat-harness";

let n = 0;
async function account(rpm: number, tpm: number): Promise<Account> {
  const key = `sk-race-${Date.now()}-${n++}-${"r".repeat(24)}`;
  await createKey(env.DB, key, {
    name: "race",
    tiers: ["mistral-tiny"],
    rpm,
    tpm,
    monthly_budget_micros: 1_000_000_000,
  });
  return (await lookupAccount(env.DB, key))!;
}

const admitMany = (a: Account, count: number, promptTokens: number, maxTokens: number) =>
  Promise.allSettled(
    Array.from({ length: count }, (_, i) =>
      admit(env, a, {
        requestId: `race-${n}-${i}-${crypto.randomUUID()}`,
        model: "mistral-tiny",
        pricing: PRICE,
        promptTokens,
        maxCompletionTokens: maxTokens,
      }),
    ),
  );
const admitted = (rs: PromiseSettledResult<unknown>[]) => rs.filter((r) => r.status === "fulfilled").length;

describe("parallel admits against small RPM/TPM budgets", () => {
  it("RPM 5: 20 concurrent admits, exactly 5 admitted", async () => {
    const rs = await admitMany(await account(5, 1_000_000), 20, 1, 1);
    expect(admitted(rs)).toBe(5);
    for (const r of rs)
      if (r.status === "rejected") expect(r.reason).toMatchObject({ status: 429, code: "rate_limit_exceeded" });
  });

  it("TPM 1000: 20 concurrent admits of 100 tokens each, exactly 10 admitted", async () => {
    const rs = await admitMany(await account(1000, 1000), 20, 50, 50);
    expect(admitted(rs)).toBe(10);
  });
});

describe("streamed answers with cached prompt tokens", () => {
  let key: string;
  let backend: FakeBackend;
  beforeAll(async () => {
    key = (await newKey()).key;
  });
  beforeEach(() => {
    backend = new FakeBackend();
    backend.install();
  });

  it("the stream's usage and the ledger both carry the cached discount, to the unit", async () => {
    const cached = 6;
    for (const h of ["r1.test", "r2.test", "r3.test"]) backend.set(h, { kind: "ok", cached });
    const messages = [{ role: "user" as const, content: "Hi there, a prompt of some length" }];
    const r = await chat(key, { messages, stream: true, stream_options: { include_usage: true } });
    const events = sseEvents(await r.text());
    const last = events
      .filter(
        (e): e is { usage: Record<string, any> } =>
          typeof e === "object" && e !== null && "usage" in e && (e as { usage: unknown }).usage !== null,
      )
      .at(-1)!;
    const prompt = applyChatTemplate(messages).length;
    const completion = byteIds(backend.defaultText).length;
    expect(last.usage).toMatchObject({
      prompt_tokens: prompt,
      completion_tokens: completion,
      prompt_tokens_details: { cached_tokens: cached },
    });
    const units = (prompt - cached) * PRICE.input + cached * PRICE.cached_input + completion * PRICE.output;
    const rec = await usageRecord(r.res.headers.get("x-request-id")!);
    expect(rec).toMatchObject({
      status: "ok",
      prompt_tokens: prompt,
      cached_tokens: cached,
      completion_tokens: completion,
    });
    expect(BigInt(rec!.cost_units)).toBe(BigInt(units));
    expect(last.usage.cost_micros).toBe(Math.ceil(units / 1_000_000));
  });
});
