/**
 * Atomic admin PATCH, admin tokens under 32 characters count as unset, failed auth
 * throttled per client, malformed keys refused before any lookup, misses never evict valid keys.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createApp } from "../../worker/app";
import { CACHE_MAX, hashKey, isCached, lookupAccount } from "../../worker/billing/keys";
import { FailedAuthThrottle } from "../../worker/middleware/auth-throttle";

const BASE = "https://edge.test";
const ADMIN = { authorization: "Bearer test-admin-token-0123456789abcdef", "content-type": "application/json" };
const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;

async function createKey() {
  const res = await SELF.fetch(`${BASE}/v1/admin/keys`, {
    method: "POST",
    headers: ADMIN,
    body: JSON.stringify({ name: "k", tiers: ["mistral-tiny"] }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; key: string };
}

/** A D1 stand-in that fails the test if anything reaches it. */
const noDb = new Proxy(
  {},
  {
    get: () => () => {
      throw new Error("D1 must not be touched");
    },
  },
) as unknown as D1Database;

describe("admin PATCH", () => {
  it("parallel PATCHes of different fields all land; each response is the row as stored", async () => {
    for (let trial = 0; trial < 5; trial++) {
      const { id } = await createKey();
      const patches = [{ rpm: 777 }, { tpm: 88888 }, { monthly_budget_micros: 99999 }, { name: "renamed" }];
      const rows = await Promise.all(
        patches.map(async (p) => {
          const res = await SELF.fetch(`${BASE}/v1/admin/keys/${id}`, {
            method: "PATCH",
            headers: ADMIN,
            body: JSON.stringify(p),
          });
          expect(res.status).toBe(200);
          return (await res.json()) as Record<string, unknown>;
        }),
      );
      const stored = (await (await SELF.fetch(`${BASE}/v1/admin/keys/${id}`, { headers: ADMIN })).json()) as Record<
        string,
        unknown
      >;
      expect(stored).toMatchObject({ rpm: 777, tpm: 88888, monthly_budget_micros: 99999, name: "renamed" });
      // Each answer shows its own field as stored (later writers' fields may or may not be in it yet).
      patches.forEach((p, i) => {
        expect(rows[i]).toMatchObject(p);
      });
    }
  });

  it("PATCH of an unknown id is 404", async () => {
    const res = await SELF.fetch(`${BASE}/v1/admin/keys/key_nope`, {
      method: "PATCH",
      headers: ADMIN,
      body: JSON.stringify({ rpm: 5 }),
    });
    expect(res.status).toBe(404);
  });
});

describe("admin token strength", () => {
  it("a token under 32 characters counts as unset: the admin API and console are 404", async () => {
    const app = createApp();
    const short = "x".repeat(31);
    for (const path of ["/v1/admin/keys", "/console/admin"]) {
      const res = await app.fetch(
        new Request(`${BASE}${path}`, { headers: { authorization: `Bearer ${short}` } }),
        { ...env, ADMIN_TOKEN: short },
        ctx,
      );
      expect(res.status, path).toBe(404);
    }
    const ok = "y".repeat(32);
    const res = await app.fetch(
      new Request(`${BASE}/v1/admin/keys`, { headers: { authorization: `Bearer ${ok}` } }),
      { ...env, ADMIN_TOKEN: ok },
      ctx,
    );
    expect(res.status).toBe(200);
  });
});

describe("failed-auth throttle", () => {
  it("a token bucket per client, on an injected clock", () => {
    let now = 1_000_000;
    const t = new FailedAuthThrottle(3, 1, () => now);
    for (let i = 0; i < 3; i++) {
      expect(t.retryAfterS("a")).toBe(0);
      t.fail("a");
    }
    expect(t.retryAfterS("a")).toBe(1);
    expect(t.retryAfterS("b")).toBe(0); // another client is not affected
    now += 1000;
    expect(t.retryAfterS("a")).toBe(0);
  });

  it("after a burst of failures a client gets 429 (OpenAI shape), before its credential is checked; others still pass", async () => {
    const ip = { "cf-connecting-ip": "198.51.100.7" };
    const { key } = await createKey();
    let first429 = -1;
    for (let i = 0; i < 80 && first429 < 0; i++) {
      const res = await SELF.fetch(`${BASE}/v1/usage`, {
        headers: { ...ip, authorization: `Bearer sk-${"0".repeat(64)}` },
      });
      if (res.status === 429) first429 = i;
      else expect(res.status).toBe(401);
    }
    expect(first429).toBeGreaterThan(10);
    const blocked = await SELF.fetch(`${BASE}/v1/admin/keys`, { headers: { ...ip, authorization: "Bearer wrong" } });
    expect(blocked.status).toBe(429);
    const body = (await blocked.json()) as { error: { type: string; code: string } };
    expect(body.error).toMatchObject({ type: "rate_limit_error", code: "auth_throttled" });
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);
    // The same key from another client is fine.
    expect(
      (
        await SELF.fetch(`${BASE}/v1/usage`, {
          headers: { "cf-connecting-ip": "198.51.100.8", authorization: `Bearer ${key}` },
        })
      ).status,
    ).toBe(200);
  });
});

describe("malformed keys", () => {
  it("wrong prefix, length or charset are refused with 401 without touching D1", async () => {
    const app = createApp();
    for (const k of [
      "short",
      "sk-" + "g".repeat(64) + "!",
      "x".repeat(31),
      "sk-" + "0".repeat(63) + ".",
      "sk-" + "0".repeat(300),
    ]) {
      const res = await app.fetch(
        new Request(`${BASE}/v1/usage`, {
          headers: { authorization: `Bearer ${k}`, "cf-connecting-ip": "203.0.113.9" },
        }),
        { ...env, DB: noDb },
        ctx,
      );
      expect(res.status, k.slice(0, 10)).toBe(401);
    }
  });

  it("a flood of unknown keys never evicts a valid key from the isolate cache", async () => {
    const { key } = await createKey();
    const now = Date.now();
    expect(await lookupAccount(env.DB, key, now)).not.toBeNull();
    const nullDb = { prepare: () => ({ bind: () => ({ first: async () => null }) }) } as unknown as D1Database;
    for (let i = 0; i <= CACHE_MAX; i++) await lookupAccount(nullDb, `sk-${i.toString(16).padStart(64, "0")}`, now);
    expect(isCached(await hashKey(key))).toBe(true);
    expect((await lookupAccount(noDb, key, now))?.keyId).toBeDefined(); // served from the cache
  });
});
