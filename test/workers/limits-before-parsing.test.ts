/**
 * The body cap (413) and a known RPM refusal (429) come before the body is read or
 * tokenized; a request refused before admission with a 400/404/413 writes no ledger row (so no raw
 * client string ever lands in the ledger's tier column), and every 429 has its `rejected` row.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createKey } from "../../worker/billing/keys";
import { MAX_BODY_BYTES } from "../../worker/api/body";
import { call, usageRecord } from "./chat-harness";

let n = 0;
async function keyWith(rpm: number): Promise<string> {
  const key = `sk-lbp-${Date.now()}-${n++}-${"x".repeat(24)}`;
  await createKey(env.DB, key, {
    name: "lbp",
    tiers: ["mistral-tiny"],
    rpm,
    tpm: 1_000_000,
    monthly_budget_micros: 1_000_000_000,
  });
  return key;
}

const rid = (r: Response) => r.headers.get("x-request-id") ?? "";

describe("body cap", () => {
  it("a declared Content-Length over the cap is a 413 in the error shape, before the body is read", async () => {
    const key = await keyWith(100);
    const big = JSON.stringify({
      model: "mistral-tiny",
      messages: [{ role: "user", content: "a".repeat(MAX_BODY_BYTES) }],
    });
    for (const path of ["/v1/chat/completions", "/v1/embeddings", "/v1/tokenize"]) {
      const r = await call(path, { method: "POST", key, body: big });
      expect(r.res.status, path).toBe(413);
      expect((await r.json()).error).toMatchObject({ type: "invalid_request_error", code: "request_too_large" });
      expect(await usageRecord(rid(r.res))).toBeNull();
    }
  });

  it("a chunked body without Content-Length is cut off at the cap too", async () => {
    const key = await keyWith(100);
    const chunk = new TextEncoder().encode("a".repeat(64 * 1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(ctrl) {
        if (sent++ > 40) ctrl.close();
        else ctrl.enqueue(chunk);
      },
    });
    const r = await call("/v1/chat/completions", { method: "POST", key, body, duplex: "half" } as RequestInit);
    expect(r.res.status).toBe(413);
    expect(sent).toBeLessThan(40); // reading stopped at the cap
  });
});

describe("RPM before tokenizing", () => {
  it("once the limiter refused a key's tier, a body that would fail tokenizing gets the 429, not a 400, and no ledger row", async () => {
    const key = await keyWith(1);
    const tok = () =>
      call("/v1/tokenize", { method: "POST", key, body: JSON.stringify({ model: "mistral-tiny", prompt: "hi" }) });
    expect((await tok()).res.status).toBe(200);
    expect((await tok()).res.status).toBe(429); // the key's limiter refuses: remembered in this isolate
    // A conversation that starts with an assistant turn is refused by the chat template, i.e. only once
    // tokenizing has started.
    const messages = [{ role: "assistant", content: "x".repeat(200_000) }];
    const r = await call("/v1/chat/completions", {
      method: "POST",
      key,
      body: JSON.stringify({ model: "mistral-tiny", messages }),
    });
    expect(r.res.status).toBe(429);
    expect((await r.json()).error).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded" });
    expect(Number(r.res.headers.get("retry-after"))).toBeGreaterThan(0);
    // Like every 429, a zero-cost `rejected` row under the (real) tier name.
    expect(await usageRecord(rid(r.res))).toMatchObject({ status: "rejected", model: "mistral-tiny", cost_units: 0 });
  });
});

describe("refused before admission", () => {
  it("a 404 for a client-chosen model string writes no ledger row (nothing raw in the tier column)", async () => {
    const key = await keyWith(100);
    const model = "<img src=x onerror=alert(1)>";
    const r = await call("/v1/chat/completions", {
      method: "POST",
      key,
      body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
    });
    expect(r.res.status).toBe(404);
    await r.text();
    expect(await usageRecord(rid(r.res))).toBeNull();
    const raw = await env.DB.prepare("SELECT COUNT(*) AS n FROM usage_records WHERE model = ?")
      .bind(model)
      .first<{ n: number }>();
    expect(raw?.n).toBe(0);
  });
});

describe("limits before work", () => {
  it("an rpm-2 key sending six oversized (1 MiB) prompts gets 429 from the third on; the first two count though refused for length", async () => {
    const key = await keyWith(2);
    const body = JSON.stringify({
      model: "mistral-tiny",
      messages: [{ role: "user", content: "hello ".repeat(170_000) }],
      max_tokens: 16,
    });
    expect(body.length).toBeGreaterThan(1_000_000);
    expect(body.length).toBeLessThanOrEqual(MAX_BODY_BYTES);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await call("/v1/chat/completions", { method: "POST", key, body });
      statuses.push(r.res.status);
      if (r.res.status === 429) {
        expect(r.res.headers.get("retry-after")).toMatch(/^\d+$/);
        expect(r.res.headers.get("x-ratelimit-limit-requests")).toBe("2");
        expect(r.res.headers.get("x-ratelimit-remaining-requests")).toBe("0");
        expect((await r.json()).error).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded" });
      } else expect((await r.json()).error).toMatchObject({ code: "context_length_exceeded" });
    }
    expect(statuses).toEqual([400, 400, 429, 429, 429, 429]);
  }, 60_000);

  it("a request counted before tokenizing is not counted again at admission", async () => {
    const key = await keyWith(2);
    const ok = () =>
      call("/v1/chat/completions", {
        method: "POST",
        key,
        body: JSON.stringify({ model: "mistral-tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 1 }),
      });
    // Two requests fit an rpm of 2 (counted once each, not twice), the third does not. (The test tiers'
    // replicas do not exist: the admitted ones end 5xx, after admission.)
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      const r = await ok();
      await r.text();
      statuses.push(r.res.status);
    }
    expect(statuses[0]).not.toBe(429);
    expect(statuses[1]).not.toBe(429);
    expect(statuses[2]).toBe(429);
  });

  it("tokenize counts before reading further and still reports x-ratelimit-*", async () => {
    const key = await keyWith(1);
    const tok = () =>
      call("/v1/tokenize", { method: "POST", key, body: JSON.stringify({ model: "mistral-tiny", prompt: "hi" }) });
    const r = await tok();
    expect(r.res.status).toBe(200);
    expect(r.res.headers.get("x-ratelimit-limit-requests")).toBe("1");
    expect((await tok()).res.status).toBe(429);
  });
});
