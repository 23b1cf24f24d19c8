/**
 * Atomic admin PATCH, secrets under 32 characters refuse to serve, failed auth throttled per client and
 * per credential, malformed keys refused before any lookup, misses never evict valid keys.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
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

describe("secret strength (enforced before anything is served)", () => {
  it("a set ADMIN_TOKEN, BACKEND_TOKEN or USAGE_TOKEN under 32 characters refuses every request with a config error", async () => {
    const app = createApp();
    const short = "x".repeat(31);
    for (const name of ["ADMIN_TOKEN", "BACKEND_TOKEN", "USAGE_TOKEN"]) {
      for (const path of ["/health", "/v1/admin/keys", "/console/admin", "/v1/models"]) {
        const res = await app.fetch(
          new Request(`${BASE}${path}`, { headers: { authorization: `Bearer ${short}` } }),
          { ...env, [name]: short },
          ctx,
        );
        expect(res.status, `${name} ${path}`).toBe(503);
        const body = (await res.json()) as { error: { type: string; code: string; message: string } };
        expect(body.error).toMatchObject({ type: "service_unavailable", code: "server_misconfigured" });
        expect(body.error.message).toContain(`${name} is set but shorter than 32 characters`);
        expect(body.error.message).not.toContain(short);
      }
    }
    const ok = "y".repeat(32);
    const res = await app.fetch(
      new Request(`${BASE}/v1/admin/keys`, { headers: { authorization: `Bearer ${ok}` } }),
      { ...env, ADMIN_TOKEN: ok, USAGE_TOKEN: "u".repeat(32), BACKEND_TOKEN: "b".repeat(40) },
      ctx,
    );
    expect(res.status).toBe(200);
  });

  it("an unset secret only turns its feature off: no ADMIN_TOKEN, the admin API is a 404", async () => {
    const app = createApp();
    const res = await app.fetch(new Request(`${BASE}/v1/admin/keys`), { ...env, ADMIN_TOKEN: undefined }, ctx);
    expect(res.status).toBe(404);
  });
});

/**
 * Runs `fn` with the clock held still, so the 1/s refill cannot outpace a loop slowed by a loaded
 * machine (the buckets read Date.now: this test and the worker share the isolate).
 */
async function clockStill<T>(fn: () => Promise<T>): Promise<T> {
  const now = Date.now();
  const spy = vi.spyOn(Date, "now").mockReturnValue(now);
  try {
    return await fn();
  } finally {
    spy.mockRestore();
  }
}

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

  it("after a burst of failures a client gets 429 (OpenAI shape), before its credential is checked; others still pass", () =>
    clockStill(async () => {
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
      const blocked = await SELF.fetch(`${BASE}/v1/usage`, { headers: { ...ip, authorization: `Bearer ${key}` } });
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
    }));

  it(
    "API keys and the admin token are separate buckets: after 70 bad API keys the admin token still works",
    () =>
      clockStill(async () => {
        const ip = { "cf-connecting-ip": "198.51.100.21" };
        const statuses: number[] = [];
        // At least 70 bad keys, and on until the API-key bucket is spent (its refill may outpace a slow loop).
        for (let i = 0; i < 200 && (i < 70 || statuses.at(-1) !== 429); i++) {
          const res = await SELF.fetch(`${BASE}/v1/usage`, {
            headers: { ...ip, authorization: `Bearer sk-${i.toString(16).padStart(64, "1")}` },
          });
          statuses.push(res.status);
        }
        expect(statuses.at(-1)).toBe(429);
        const admin = await SELF.fetch(`${BASE}/v1/admin/keys`, { headers: { ...ip, ...ADMIN } });
        expect(admin.status).toBe(200);
        // And the other way round: failed admin attempts do not lock out API keys.
        const { key } = await createKey();
        const ip2 = { "cf-connecting-ip": "198.51.100.22" };
        let adminStatus = 0;
        for (let i = 0; i < 200 && adminStatus !== 429; i++)
          adminStatus = (
            await SELF.fetch(`${BASE}/v1/admin/keys`, {
              headers: { ...ip2, authorization: `Bearer ${"w".repeat(40)}` },
            })
          ).status;
        expect(adminStatus, "the admin bucket is spent").toBe(429);
        expect(
          (await SELF.fetch(`${BASE}/v1/usage`, { headers: { ...ip2, authorization: `Bearer ${key}` } })).status,
        ).toBe(200);
      }),
    60_000,
  );

  it(
    "POST /internal/usage is throttled on failed auth like the admin API",
    () =>
      clockStill(async () => {
        const ip = { "cf-connecting-ip": "198.51.100.31" };
        const statuses: number[] = [];
        // Until the first 429: the burst (60) plus whatever the 1/s refill gave back while the loop ran.
        while (statuses.length < 200 && statuses.at(-1) !== 429) {
          const res = await SELF.fetch(`${BASE}/internal/usage`, {
            method: "POST",
            headers: {
              ...ip,
              authorization: `Bearer wrong-usage-token-${statuses.length}`,
              "content-type": "application/json",
            },
            body: "{}",
          });
          statuses.push(res.status);
        }
        expect(statuses.at(-1)).toBe(429);
        expect(statuses.slice(0, -1).every((s) => s === 401)).toBe(true);
        expect(statuses.length).toBeGreaterThan(60);
      }),
    60_000,
  );
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
