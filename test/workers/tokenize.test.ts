/**
 * POST /v1/tokenize and /v1/detokenize (vLLM's shapes): exact ids, authenticated, unmetered, counted
 * against RPM.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { createKey } from "../../worker/billing/keys";
import { call, newKey } from "./chat-harness";

let key: string;
beforeAll(async () => {
  key = (await newKey(["mistral-tiny", "mistral-small"])).key;
});

const post = (path: string, body: unknown, k: string | undefined = key) =>
  call(path, { method: "POST", key: k, body: JSON.stringify(body) });

describe("POST /v1/tokenize", () => {
  it("a prompt: its ids without BOS, the count and the tier's context", async () => {
    const r = await post("/v1/tokenize", { model: "mistral-tiny", prompt: "Hello world" });
    expect(r.res.status).toBe(200);
    expect(await r.json()).toEqual({ count: 2, max_model_len: 256, tokens: [22557, 1526] });
  });

  it("messages: the chat template's ids, BOS included, exactly what chat sends", async () => {
    const r = await post("/v1/tokenize", { model: "mistral-small", messages: [{ role: "user", content: "Hi" }] });
    expect(await r.json()).toEqual({
      count: 9,
      max_model_len: 4096,
      tokens: [1, 733, 16289, 28793, 15359, 733, 28748, 16289, 28793],
    });
    // The template's own rules apply: an empty earlier answer is its EOS alone.
    const multi = await post("/v1/tokenize", {
      model: "mistral-small",
      messages: [
        { role: "user", content: "Hi" },
        { role: "assistant", content: "" },
        { role: "user", content: "Again?" },
      ],
    });
    expect((await multi.json()).tokens).toEqual([
      1, 733, 16289, 28793, 15359, 733, 28748, 16289, 28793, 2, 733, 16289, 28793, 9706, 28804, 733, 28748, 16289,
      28793,
    ]);
  });

  it("bad input is a 400 in the OpenAI shape naming the field", async () => {
    const cases: Array<[unknown, string | null]> = [
      [{ model: "mistral-tiny" }, "prompt"],
      [{ model: "mistral-tiny", prompt: "a", messages: [{ role: "user", content: "b" }] }, "messages"],
      [{ model: "mistral-tiny", prompt: 5 }, "prompt"],
      [{ prompt: "a" }, "model"],
      [{ model: "mistral-tiny", messages: [{ role: "tool", content: "x" }] }, "messages[0].tool_call_id"],
      [{ model: "mistral-tiny", messages: [{ role: "function", content: "x" }] }, "messages[0].role"],
      [{ model: "mistral-tiny", messages: [{ role: "assistant", content: "x" }] }, "messages"],
    ];
    for (const [body, param] of cases) {
      const r = await post("/v1/tokenize", body);
      const j = await r.json();
      expect(r.res.status, JSON.stringify(body)).toBe(400);
      expect(j.error).toMatchObject({ type: "invalid_request_error", param });
    }
  });
});

describe("POST /v1/detokenize", () => {
  it("ids back to text; control ids add nothing", async () => {
    const r = await post("/v1/detokenize", { model: "mistral-tiny", tokens: [1, 22557, 1526, 2] });
    expect(r.res.status).toBe(200);
    expect(await r.json()).toEqual({ prompt: "Hello world" });
  });

  it("an id outside the vocabulary is a 400 naming it", async () => {
    const r = await post("/v1/detokenize", { model: "mistral-tiny", tokens: [1, 32000] });
    expect(r.res.status).toBe(400);
    expect((await r.json()).error).toMatchObject({ type: "invalid_request_error", param: "tokens[1]" });
  });
});

describe("access and metering", () => {
  it("needs a key (401), a known model and one the plan allows (404 either way)", async () => {
    const anon = await call("/v1/tokenize", {
      method: "POST",
      body: JSON.stringify({ model: "mistral-tiny", prompt: "x" }),
    });
    expect(anon.res.status).toBe(401);
    expect((await post("/v1/tokenize", { model: "mistral-huge", prompt: "x" })).res.status).toBe(404);
    const r = await post("/v1/detokenize", { model: "mistral-embed", tokens: [1] });
    expect(r.res.status).toBe(404);
    expect((await r.json()).error).toMatchObject({ type: "not_found_error", code: "model_not_found" });
  });

  it("counts toward RPM (429 with Retry-After once spent) and leaves no ledger record", async () => {
    const k = `sk-tok-${Date.now()}-${"z".repeat(24)}`;
    const row = await createKey(env.DB, k, {
      name: "t",
      tiers: ["mistral-tiny"],
      rpm: 2,
      tpm: 1000,
      monthly_budget_micros: 0,
    });
    const first = await post("/v1/tokenize", { model: "mistral-tiny", prompt: "one" }, k);
    expect(first.res.status).toBe(200);
    expect(first.res.headers.get("x-ratelimit-remaining-requests")).toBe("1");
    expect((await post("/v1/detokenize", { model: "mistral-tiny", tokens: [1] }, k)).res.status).toBe(200);
    const third = await post("/v1/tokenize", { model: "mistral-tiny", prompt: "three" }, k);
    expect(third.res.status).toBe(429);
    expect((await third.json()).error).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded" });
    expect(Number(third.res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // Unmetered: a zero budget does not matter, and nothing reaches the ledger.
    const rows = await env.DB.prepare("SELECT COUNT(*) AS n FROM usage_records WHERE key_id = ?")
      .bind(row.id)
      .first<{ n: number }>();
    expect(rows!.n).toBe(0);
  });
});
