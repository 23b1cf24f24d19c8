/**
 * The RPM/TPM token buckets (worker/billing/rate.ts): a bucket refills continuously but never holds more
 * than its capacity, so a key that idles for an hour can burst its per-minute allowance, not 60 of them.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { KeyLimiter } from "../../worker/billing/key-limiter";
import { createKey } from "../../worker/billing/keys";
import { limiterFor } from "../../worker/billing/meter";
import { refill, waitMs } from "../../worker/billing/rate";
import { FakeBackend } from "./chat-fake-backend";
import { chat } from "./chat-harness";

const HOUR_MS = 3_600_000;

describe("refill", () => {
  it("an empty bucket left idle for an hour holds its capacity, not an hour of refills", () => {
    expect(refill({ level: 0, updatedMs: 0 }, 3, HOUR_MS)).toEqual({ level: 3, updatedMs: HOUR_MS });
    expect(refill({ level: 2.5, updatedMs: 0 }, 1000, HOUR_MS).level).toBe(1000);
  });

  it("refills capacity per minute in proportion to the time passed, and a clock going back adds nothing", () => {
    expect(refill({ level: 0, updatedMs: 0 }, 3, 20_000).level).toBeCloseTo(1, 9);
    expect(refill({ level: 1, updatedMs: 10_000 }, 3, 5_000)).toEqual({ level: 1, updatedMs: 5_000 });
    expect(refill(undefined, 7, 42)).toEqual({ level: 7, updatedMs: 42 });
    expect(waitMs({ level: 0, updatedMs: 0 }, 3, 1)).toBe(20_000);
    expect(waitMs({ level: 0, updatedMs: 0 }, 3, 4)).toBe(Infinity);
  });
});

describe("an rpm-3 key after an hour of idling (HTTP)", () => {
  let backend: FakeBackend;
  beforeEach(() => {
    backend = new FakeBackend();
    backend.install();
  });

  it("sends 3 requests at once, and the 4th is refused with 429", async () => {
    const key = `sk-rate-${Date.now()}-${"r".repeat(24)}`;
    const row = await createKey(env.DB, key, {
      name: "rate",
      tiers: ["mistral-tiny"],
      rpm: 3,
      tpm: 10_000_000,
      monthly_budget_micros: 1_000_000_000,
    });
    // The key's limiter runs on a clock the test moves: no waiting, and no refill between calls.
    let now = Date.now();
    await runInDurableObject(limiterFor(env, row.id), (o: unknown) => void ((o as KeyLimiter).clock = () => now));
    const send = async () => {
      const r = await chat(key, { max_tokens: 4 });
      await r.text();
      return r.res;
    };
    // Spend the allowance (no 429 yet: the edge would remember a refusal on the real clock).
    for (let i = 0; i < 3; i++) expect((await send()).status).toBe(200);

    now += HOUR_MS;
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await send();
      statuses.push(res.status);
      if (i === 0) expect(res.headers.get("x-ratelimit-remaining-requests")).toBe("2");
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
  });
});
