import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createApp } from "../../worker/app";

const BASE = "https://edge.test";
const ADMIN = { authorization: "Bearer test-admin-token-0123456789abcdef", "content-type": "application/json" };

function admin(path: string, init: RequestInit = {}) {
  return SELF.fetch(`${BASE}${path}`, {
    ...init,
    headers: { ...ADMIN, ...(init.headers as Record<string, string> | undefined) },
  });
}

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

describe("admin auth", () => {
  it("401 without or with a wrong token, in the error shape, never echoing the token", async () => {
    for (const headers of <Record<string, string>[]>[
      {},
      { authorization: "Bearer nope" },
      { authorization: "test-admin-token-0123456789abcdef" },
      { authorization: "Bearer test-admin-token-0123456789abcdefX" },
    ]) {
      const res = await SELF.fetch(`${BASE}/v1/admin/keys`, { headers });
      expect(res.status).toBe(401);
      const text = await res.text();
      expect(text).not.toContain("nope");
      expect(text).not.toContain("test-admin-token-0123456789abcdef");
      expect((JSON.parse(text) as ErrorBody).error.type).toBe("authentication_error");
    }
  });

  it("API keys are not admin tokens", async () => {
    const created = (await (
      await admin("/v1/admin/keys", { method: "POST", body: JSON.stringify({ name: "a", tiers: ["mistral-tiny"] }) })
    ).json()) as { key: string };
    const res = await SELF.fetch(`${BASE}/v1/admin/keys`, { headers: { authorization: `Bearer ${created.key}` } });
    expect(res.status).toBe(401);
  });

  it("with ADMIN_TOKEN unset the admin API does not exist (404)", async () => {
    const app = createApp();
    const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;
    const res = await app.fetch(
      new Request(`${BASE}/v1/admin/keys`, { headers: ADMIN }),
      { ...env, ADMIN_TOKEN: undefined },
      ctx,
    );
    expect(res.status).toBe(404);
    expect(((await res.json()) as ErrorBody).error.type).toBe("not_found_error");
  });
});

describe("admin keys API", () => {
  it("creates with defaults, rejects bad input with 400 and a param", async () => {
    const res = await admin("/v1/admin/keys", {
      method: "POST",
      body: JSON.stringify({ name: "defaults", tiers: ["mistral-tiny", "mistral-tiny"] }),
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      object: "api_key",
      name: "defaults",
      tiers: ["mistral-tiny"],
      rpm: 60,
      tpm: 100000,
      monthly_budget_micros: 10000000,
      revoked_at: null,
    });
    expect(body.id).toMatch(/^key_[0-9a-f]{24}$/);
    expect(body.key).toMatch(/^sk-[0-9a-f]{64}$/);

    const cases: [unknown, string | null][] = [
      [{ name: "x", tiers: ["gpt-4"] }, "tiers"],
      [{ name: "x", tiers: [] }, "tiers"],
      [{ tiers: ["mistral-tiny"] }, "name"],
      [{ name: "x", tiers: ["mistral-tiny"], rpm: 0 }, "rpm"],
      [{ name: "x", tiers: ["mistral-tiny"], rpm: 1.5 }, "rpm"],
      [{ name: "x", tiers: ["mistral-tiny"], monthly_budget_micros: -1 }, "monthly_budget_micros"],
      [{ name: "x", tiers: ["mistral-tiny"], bogus: 1 }, null],
      [{ name: "x", tiers: ["mistral-tiny"], key: "short-key" }, "key"],
      [{ name: "x", tiers: ["mistral-tiny"], key: "has spaces has spaces has spaces has spaces" }, "key"],
    ];
    for (const [payload, param] of cases) {
      const r = await admin("/v1/admin/keys", { method: "POST", body: JSON.stringify(payload) });
      expect(r.status, JSON.stringify(payload)).toBe(400);
      const e = ((await r.json()) as ErrorBody).error;
      expect(e.type).toBe("invalid_request_error");
      if (param) expect(e.param).toBe(param);
    }
    const notJson = await admin("/v1/admin/keys", { method: "POST", body: "{" });
    expect(notJson.status).toBe(400);
  });

  it("caller-chosen key: usable, and a second create of the same key is 409 key_exists naming the id", async () => {
    const key = `sk-dev-${"ab".repeat(24)}`;
    const first = await admin("/v1/admin/keys", {
      method: "POST",
      body: JSON.stringify({ name: "dev", tiers: ["mistral-tiny"], key }),
    });
    expect(first.status).toBe(201);
    const { id } = (await first.json()) as { id: string };
    const again = await admin("/v1/admin/keys", {
      method: "POST",
      body: JSON.stringify({ name: "dev", tiers: ["mistral-tiny"], key }),
    });
    expect(again.status).toBe(409);
    const text = await again.text();
    expect((JSON.parse(text) as ErrorBody).error.code).toBe("key_exists");
    expect(text).toContain(id);
    expect(text).not.toContain(key);
    const usage = await SELF.fetch(`${BASE}/v1/usage`, { headers: { authorization: `Bearer ${key}` } });
    expect(usage.status).toBe(200);
  });

  it("get, patch, delete; unknown ids are 404", async () => {
    const { id } = (await (
      await admin("/v1/admin/keys", { method: "POST", body: JSON.stringify({ name: "p", tiers: ["mistral-tiny"] }) })
    ).json()) as { id: string };
    const patched = await admin(`/v1/admin/keys/${id}`, {
      method: "PATCH",
      body: JSON.stringify({ rpm: 5, tiers: ["mistral-small"] }),
    });
    expect(patched.status).toBe(200);
    expect(await patched.json()).toMatchObject({ id, rpm: 5, tiers: ["mistral-small"], tpm: 100000, name: "p" });
    expect(await (await admin(`/v1/admin/keys/${id}`)).json()).toMatchObject({ id, rpm: 5 });
    expect(
      (await admin(`/v1/admin/keys/${id}`, { method: "PATCH", body: JSON.stringify({ tiers: ["nope"] }) })).status,
    ).toBe(400);

    const del = await admin(`/v1/admin/keys/${id}`, { method: "DELETE" });
    expect(del.status).toBe(200);
    const d = (await del.json()) as { deleted: boolean; revoked_at: number };
    expect(d.deleted).toBe(true);
    expect(d.revoked_at).toBeGreaterThan(0);
    const again = (await (await admin(`/v1/admin/keys/${id}`, { method: "DELETE" })).json()) as { revoked_at: number };
    expect(again.revoked_at).toBe(d.revoked_at);

    for (const init of [{}, { method: "PATCH", body: "{}" }, { method: "DELETE" }]) {
      const r = await admin("/v1/admin/keys/key_missing", init);
      expect(r.status).toBe(404);
      expect(((await r.json()) as ErrorBody).error.code).toBe("key_not_found");
    }
  });

  it("usage validates dates", async () => {
    expect((await admin("/v1/admin/usage?from=2026-13-45")).status).toBe(400);
    expect((await admin("/v1/admin/usage?from=2026-02-02&to=2026-02-01")).status).toBe(400);
    const ok = await admin("/v1/admin/usage?from=2026-01-01&to=2026-01-31");
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ object: "list", data: [] });
  });
});
