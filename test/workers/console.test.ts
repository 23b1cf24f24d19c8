/**
 * The console's server side: pages and assets with a strict CSP, /console/admin only when ADMIN_TOKEN
 * is set, and the caller-scoped routes it reads (GET /v1/key, GET /v1/usage/requests).
 * The browser itself is driven in test/node/console-*.test.ts.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createApp } from "../../worker/app";
import { lookupAccount } from "../../worker/billing/keys";
import { settle } from "../../worker/billing/meter";
import type { Pricing } from "../../worker/billing/types";
import { CONSOLE_CSS, CONSOLE_JS, CONSOLE_JS_SRI } from "../../worker/console/assets.generated";
import { CSS_PATH, JS_PATH } from "../../worker/console/pages";
import { budgetPeriod } from "../../worker/routes/key";

const BASE = "https://edge.test";
const ADMIN = { authorization: "Bearer test-admin-token-0123456789abcdef", "content-type": "application/json" };
const TINY = (JSON.parse(env.TIERS) as Record<string, { price: Pricing }>)["mistral-tiny"].price;

async function newKey(name: string, budget = 5_000_000) {
  const res = await SELF.fetch(`${BASE}/v1/admin/keys`, {
    method: "POST",
    headers: ADMIN,
    body: JSON.stringify({ name, tiers: ["mistral-tiny"], rpm: 100, tpm: 100_000, monthly_budget_micros: budget }),
  });
  const { key, id } = (await res.json()) as { key: string; id: string };
  return { key, id, account: (await lookupAccount(env.DB, key))! };
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

describe("console pages", () => {
  it("serves /console with a strict CSP, no inline script or style, and SRI on the bundle", async () => {
    const res = await SELF.fetch(`${BASE}/console`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    const csp = res.headers.get("content-security-policy") ?? "";
    for (const d of [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      "frame-ancestors 'none'",
      "require-trusted-types-for 'script'",
    ])
      expect(csp).toContain(d);
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).not.toContain("unsafe-eval");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("cache-control")).toBe("no-store");
    const html = await res.text();
    expect(html).not.toMatch(/<script(?![^>]*\ssrc=)/); // every script is external
    expect(html).not.toMatch(/\sstyle=|<style/);
    expect(html).not.toMatch(/\son[a-z]+=/i);
    expect(html).toContain(`src="${JS_PATH}" integrity="${CONSOLE_JS_SRI}"`);
    expect(html).toContain('data-page="user"');
  });

  it("serves the bundle immutably under its content version, and its SRI hash matches", async () => {
    const js = await SELF.fetch(`${BASE}${JS_PATH}`);
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toMatch(/^text\/javascript/);
    expect(js.headers.get("cache-control")).toContain("immutable");
    const body = await js.text();
    expect(body).toBe(CONSOLE_JS);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-384", new TextEncoder().encode(body)));
    expect(`sha384-${btoa(String.fromCharCode(...digest))}`).toBe(CONSOLE_JS_SRI);
    expect(await (await SELF.fetch(`${BASE}${CSS_PATH}`)).text()).toBe(CONSOLE_CSS);
    expect((await SELF.fetch(`${BASE}/console/assets/console.0000.js`)).status).toBe(404);
  });

  it("/console/admin carries the tier names; it is a 404 when ADMIN_TOKEN is unset, like the admin API", async () => {
    const res = await SELF.fetch(`${BASE}/console/admin`);
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('data-page="admin"');
    expect(html).toMatch(/data-tiers="[^"]*mistral-tiny/);
    const app = createApp();
    const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;
    const hidden = await app.fetch(new Request(`${BASE}/console/admin`), { ...env, ADMIN_TOKEN: undefined }, ctx);
    expect(hidden.status).toBe(404);
    expect(((await hidden.json()) as { error: { type: string } }).error.type).toBe("not_found_error");
  });
});

describe("GET /v1/key", () => {
  it("401 without a key; with one, the plan, spend, reservations and the budget period", async () => {
    expect((await SELF.fetch(`${BASE}/v1/key`)).status).toBe(401);
    const k = await newKey("<img src=x onerror=alert(1)>");
    const start = Date.now();
    await settle(env, k.account, {
      requestId: `con-${crypto.randomUUID()}`,
      model: "mistral-tiny",
      pricing: TINY,
      promptTokens: 1000,
      cachedTokens: 0,
      completionTokens: 2000,
      status: "ok",
      startedAt: start,
      endedAt: start,
    });
    const res = await SELF.fetch(`${BASE}/v1/key`, { headers: bearer(k.key) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    // 1000 x 0.14 + 2000 x 0.42 = 980 micro-euros
    expect(body).toEqual({
      object: "key",
      id: k.id,
      name: "<img src=x onerror=alert(1)>",
      tiers: ["mistral-tiny"],
      rpm: 100,
      tpm: 100_000,
      monthly_budget_micros: 5_000_000,
      spent_micros: 980,
      reserved_micros: 0,
      remaining_micros: 5_000_000 - 980,
      budget_state: "ok",
      period_start: budgetPeriod(start).start,
      period_end: budgetPeriod(start).end,
    });
    expect(JSON.stringify(body)).not.toContain(k.key);
  });

  it("budget_state agrees with the refusals: low when a first slice no longer fits, spent when nothing remains", async () => {
    const state = async (key: string) =>
      ((await (await SELF.fetch(`${BASE}/v1/key`, { headers: bearer(key) })).json()) as { budget_state: string })
        .budget_state;
    // A first slice of 64 tokens on mistral-tiny reserves 64 × 0.42 = 26.88 µ€.
    const k = await newKey("budget states", 30);
    expect(await state(k.key)).toBe("ok");
    const spend = async (completionTokens: number) =>
      settle(env, k.account, {
        requestId: `bs-${crypto.randomUUID()}`,
        model: "mistral-tiny",
        pricing: TINY,
        promptTokens: 0,
        cachedTokens: 0,
        completionTokens,
        status: "ok",
        startedAt: Date.now(),
        endedAt: Date.now(),
      });
    await spend(10); // 4.2 µ€ spent, 25.8 remain < 26.88
    expect(await state(k.key)).toBe("low");
    // A chat request without a small max_tokens is refused, but says it is not spent (and what fits).
    const res = await SELF.fetch(`${BASE}/v1/chat/completions`, {
      method: "POST",
      headers: { ...bearer(k.key), "content-type": "application/json" },
      body: JSON.stringify({ model: "mistral-tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 500 }),
    });
    expect(res.status).toBe(400);
    expect(res.headers.get("x-should-retry")).toBe("false");
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("budget_insufficient");
    expect(body.error.message).toMatch(/max_tokens 500/);
    expect(body.error.message).toMatch(/25 µ€ remain this month/);
    await spend(100); // 46.2 µ€: past the budget
    expect(await state(k.key)).toBe("spent");
  });

  it("the budget period is the UTC calendar month; it resets on the 1st", () => {
    expect(budgetPeriod(Date.UTC(2026, 11, 31, 23, 59))).toEqual({
      start: "2026-12-01T00:00:00.000Z",
      end: "2027-01-01T00:00:00.000Z",
    });
    expect(budgetPeriod(Date.UTC(2026, 1, 1))).toEqual({
      start: "2026-02-01T00:00:00.000Z",
      end: "2026-03-01T00:00:00.000Z",
    });
  });
});

describe("GET /v1/usage/requests (caller-scoped)", () => {
  it("a key sees only its own records, whatever key_id it asks for; request_id and limit filter", async () => {
    const a = await newKey("a");
    const b = await newKey("b");
    const now = Date.now();
    const ids: string[] = [];
    for (const [k, n] of [
      [a, 3],
      [b, 2],
    ] as const)
      for (let i = 0; i < n; i++) {
        const requestId = `con-${k.id}-${i}`;
        ids.push(requestId);
        await settle(env, k.account, {
          requestId,
          model: "mistral-tiny",
          pricing: TINY,
          promptTokens: 3,
          cachedTokens: 0,
          completionTokens: i,
          status: i === 0 ? "cancelled" : "ok",
          startedAt: now + i,
          endedAt: now + i,
        });
      }
    const get = async (key: string, q = "") => {
      const res = await SELF.fetch(`${BASE}/v1/usage/requests${q}`, { headers: bearer(key) });
      return {
        status: res.status,
        body: (await res.json()) as { data: { request_id: string; key_id: string; status: string }[] },
      };
    };
    const mine = await get(a.key, `?key_id=${b.id}`);
    expect(mine.status).toBe(200);
    expect(mine.body.data.map((r) => r.request_id)).toEqual([`con-${a.id}-2`, `con-${a.id}-1`, `con-${a.id}-0`]);
    expect(mine.body.data.every((r) => r.key_id === a.id)).toBe(true);
    expect((await get(a.key, `?request_id=con-${b.id}-0`)).body.data).toEqual([]);
    const one = await get(b.key, `?request_id=con-${b.id}-0`);
    expect(one.body.data).toMatchObject([{ request_id: `con-${b.id}-0`, status: "cancelled" }]);
    expect((await get(a.key, "?limit=1")).body.data).toHaveLength(1);
    expect((await get(a.key, "?limit=0")).status).toBe(400);
    expect((await SELF.fetch(`${BASE}/v1/usage/requests`)).status).toBe(401);
  });
});
