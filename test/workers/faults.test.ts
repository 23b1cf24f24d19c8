/**
 * The soak's D1 fault hook (worker/billing/faults.ts): /internal/faults exists only with FAULTS=1 (never in
 * wrangler.toml) and behind the admin token; armed, it fails ledger writes for its window, so the settle
 * goes through USAGE_QUEUE and the real queue consumer writes the one row once D1 is back.
 */
import { env } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FakeBackend } from "./chat-fake-backend";
import { call, chat, newKey, usageRecord } from "./chat-harness";

const ADMIN = `Bearer ${env.ADMIN_TOKEN}`;
const ON = { FAULTS: "1" };
const arm = (ms: number, vars: Record<string, string> = ON, auth = ADMIN) =>
  call("/internal/faults/d1", {
    method: "POST",
    headers: { authorization: auth },
    body: JSON.stringify({ fail_ms: ms }),
    vars,
  });

beforeEach(() => new FakeBackend().install());
afterEach(async () => void (await (await arm(0)).text()));

describe("/internal/faults", () => {
  it("is a 404 unless FAULTS=1, and needs the admin token", async () => {
    expect(env.FAULTS).toBeUndefined(); // wrangler.toml must never turn it on
    expect((await arm(1000, {})).res.status).toBe(404);
    expect((await arm(1000, { FAULTS: "0" })).res.status).toBe(404);
    expect((await arm(1000, ON, "Bearer wrong")).res.status).toBe(401);
    const ok = await arm(1000);
    expect(ok.res.status).toBe(200);
    expect((await ok.json()).d1.failing_ms).toBeGreaterThan(0);
  });

  it("while armed, ledger writes fail: the settle goes through the queue and lands once D1 is back", async () => {
    const { key } = await newKey();
    const faults = async () => (await call("/internal/faults", { headers: { authorization: ADMIN }, vars: ON })).json();
    const before = (await faults()).d1.refused_writes as number;
    await (await arm(600_000)).text();
    const r = await chat(key, { max_tokens: 5 });
    const body = await r.json();
    expect(r.res.status).toBe(200);
    const id = r.res.headers.get("x-request-id")!;
    // The answer went out and its settle finished: the row is not in D1, its write was refused.
    expect(await usageRecord(id)).toBeNull();
    expect((await faults()).d1.refused_writes).toBeGreaterThan(before);
    await (await arm(0)).text();
    // The queue consumer replays it (retrying while the window was open): one row, the client's usage.
    let rec = await usageRecord(id);
    const end = Date.now() + 30_000;
    while (!rec && Date.now() < end) {
      await new Promise((res) => setTimeout(res, 100));
      rec = await usageRecord(id);
    }
    expect(rec).toMatchObject({ status: "ok", completion_tokens: body.usage.completion_tokens });
  });
});
