import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { CACHE_TTL_MS, lookupAccount } from "../../worker/billing/keys";
import { assertTierAllowed } from "../../worker/billing/meter";
import { ApiError } from "../../worker/errors";

const BASE = "https://edge.test";
const ADMIN = { authorization: "Bearer test-admin-token-0123456789abcdef", "content-type": "application/json" };

async function createKey(plan: Record<string, unknown> = {}) {
  const res = await SELF.fetch(`${BASE}/v1/admin/keys`, {
    method: "POST",
    headers: ADMIN,
    body: JSON.stringify({ name: "k", tiers: ["mistral-tiny"], ...plan }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; key: string };
}

const usage = (headers: Record<string, string>) => SELF.fetch(`${BASE}/v1/usage`, { headers });

/** The key and every prefix of it of 4+ characters (incl. the "sk-" form) must be absent. */
function expectNoKeyMaterial(text: string, key: string) {
  for (let n = 4; n <= key.length; n++)
    expect(text.includes(key.slice(0, n)), `prefix of length ${n} leaked`).toBe(false);
  expect(text.includes(key.slice(3, 11))).toBe(false);
}

describe("API keys", () => {
  it("are 256-bit, shown once, stored only as their SHA-256", async () => {
    const { id, key } = await createKey();
    expect(key).toMatch(/^sk-[0-9a-f]{64}$/);

    const row = await env.DB.prepare("SELECT * FROM api_keys WHERE id = ?").bind(id).first<Record<string, unknown>>();
    const digest = Array.from(
      new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key))),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    expect(row?.key_hash).toBe(digest);
    const dump = JSON.stringify(await env.DB.prepare("SELECT * FROM api_keys").all());
    expectNoKeyMaterial(dump, key);
    // The cache salt is random, not derived from the key.
    expect(row?.cache_salt).toMatch(/^[0-9a-f]{32}$/);
    expect(digest.includes(String(row?.cache_salt))).toBe(false);

    const list = await (await SELF.fetch(`${BASE}/v1/admin/keys`, { headers: ADMIN })).text();
    expect(list).toContain(id);
    expectNoKeyMaterial(list, key);
    expect(list).not.toContain(digest);
    const one = await (await SELF.fetch(`${BASE}/v1/admin/keys/${id}`, { headers: ADMIN })).text();
    expectNoKeyMaterial(one, key);
    expect(one).not.toContain(digest);
  });

  it("authenticate by Bearer or x-api-key; each key gets its own salt", async () => {
    const a = await createKey();
    const b = await createKey();
    expect((await usage({ authorization: `Bearer ${a.key}` })).status).toBe(200);
    expect((await usage({ "x-api-key": a.key })).status).toBe(200);
    const accA = await lookupAccount(env.DB, a.key);
    const accB = await lookupAccount(env.DB, b.key);
    expect(accA?.keyId).toBe(a.id);
    expect(accA?.cacheSalt).not.toBe(accB?.cacheSalt);
  });

  it("401 authentication_error for missing, wrong, malformed keys, never echoing any of the key", async () => {
    const { key } = await createKey();
    const wrong = `${key.slice(0, -1)}${key.endsWith("0") ? "1" : "0"}`;
    const cases: Record<string, string>[] = [
      {},
      { authorization: `Bearer ${wrong}` },
      { authorization: wrong },
      { authorization: `Basic ${key}` },
      { "x-api-key": wrong },
      { authorization: `Bearer ${key}x` },
      { authorization: `Bearer ${"x".repeat(5000)}` },
    ];
    for (const headers of cases) {
      const res = await usage(headers);
      expect(res.status, JSON.stringify(headers).slice(0, 40)).toBe(401);
      const text = await res.text();
      const body = JSON.parse(text) as { error: { type: string; code: string } };
      expect(body.error).toMatchObject({ type: "authentication_error", code: "invalid_api_key" });
      expectNoKeyMaterial(text, key);
      expectNoKeyMaterial(text, wrong);
      expect([...res.headers].map(([k, v]) => `${k}:${v}`).join("\n")).not.toContain(key.slice(3, 11));
    }
  });

  it("a revoked key is refused at once through the admin API", async () => {
    const { id, key } = await createKey();
    expect((await usage({ authorization: `Bearer ${key}` })).status).toBe(200);
    expect((await SELF.fetch(`${BASE}/v1/admin/keys/${id}`, { method: "DELETE", headers: ADMIN })).status).toBe(200);
    const res = await usage({ authorization: `Bearer ${key}` });
    expect(res.status).toBe(401);
    expectNoKeyMaterial(await res.text(), key);
  });

  it("a key revoked elsewhere (another isolate: D1 only) is refused within 5 s (the cache's injected clock)", async () => {
    const { id, key } = await createKey();
    const t0 = Date.now();
    expect(await lookupAccount(env.DB, key, t0)).not.toBeNull(); // now cached in this isolate
    expect(CACHE_TTL_MS).toBeLessThanOrEqual(5000);
    await env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?").bind(t0, id).run();
    expect(await lookupAccount(env.DB, key, t0 + CACHE_TTL_MS - 1)).not.toBeNull(); // still the cached entry
    expect(await lookupAccount(env.DB, key, t0 + CACHE_TTL_MS)).toBeNull(); // re-read from D1: refused
  });

  it("plans: tiers outside the plan are 404 model_not_found; PATCH takes effect", async () => {
    const { id, key } = await createKey({ tiers: ["mistral-tiny"] });
    const account = (await lookupAccount(env.DB, key))!;
    expect(() => assertTierAllowed(account, "mistral-tiny")).not.toThrow();
    let err: unknown;
    try {
      assertTierAllowed(account, "mistral-medium");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(404);
    expect((err as ApiError).body().error).toMatchObject({
      type: "not_found_error",
      code: "model_not_found",
      param: "model",
    });

    await SELF.fetch(`${BASE}/v1/admin/keys/${id}`, {
      method: "PATCH",
      headers: ADMIN,
      body: JSON.stringify({ tiers: ["mistral-medium"], rpm: 7 }),
    });
    const after = (await lookupAccount(env.DB, key))!;
    expect(after.tiers).toEqual(["mistral-medium"]);
    expect(after.rpm).toBe(7);
    expect(after.cacheSalt).toBe(account.cacheSalt);
  });

  it("unknown /v1 URLs stay 404 without a key; admin paths never take an API key", async () => {
    expect((await SELF.fetch(`${BASE}/v1/nope`)).status).toBe(404);
    expect((await SELF.fetch(`${BASE}/v1/usage`)).status).toBe(401);
  });
});
