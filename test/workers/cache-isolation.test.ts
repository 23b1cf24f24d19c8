/**
 * The response-cache key covers the tier's backend_model and is an HMAC under
 * CACHE_KEY_SECRET (no secret: no caching); the tokenized-turn cache is partitioned per account salt.
 */
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { cacheKey } from "../../worker/completion/response-cache";
import { applyChatTemplate, turnCacheHits } from "../../worker/tokenizer/chat";
import { FakeBackend } from "./chat-fake-backend";
import { chat, newKey, tiersJson } from "./chat-harness";
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import worker from "../../worker/index";

async function chatWithSecret(secret: string | undefined, body: Record<string, unknown>): Promise<Response> {
  const ctx = createExecutionContext();
  const req = new Request("https://edge.test/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...ttl.headers },
    body: JSON.stringify({ model: "mistral-tiny", ...body }),
  });
  const res = await worker.fetch(req, { ...env, TIERS: tiersJson(), CACHE_KEY_SECRET: secret }, ctx);
  await res.text();
  await waitOnExecutionContext(ctx);
  return res;
}

let key: string;
let backend: FakeBackend;
const ttl = { headers: { "x-cache-ttl": "60" } };
let n = 0;
const fresh = () => [{ role: "user" as const, content: `Isolate me ${n++} ${Date.now()}` }];
const PRICE = { input: 140000, cached_input: 14000, output: 420000 };

beforeAll(async () => {
  key = (await newKey()).key;
});
beforeEach(() => {
  backend = new FakeBackend();
  backend.install();
});

describe("response-cache key", () => {
  it("a model swap behind the tier (backend_model) is a MISS", async () => {
    const body = { messages: fresh(), temperature: 0, max_tokens: 20 };
    const first = await chat(key, body, ttl);
    await first.text(); // the entry is stored under waitUntil
    expect(first.res.headers.get("x-cache")).toBe("MISS");
    const again = await chat(key, body, ttl);
    await again.text();
    expect(again.res.headers.get("x-cache")).toBe("HIT");
    const swapped = tiersJson({
      "mistral-tiny": { backends: ["http://r1.test"], backend_model: "tiny-v2", context_window: 256, price: PRICE },
    });
    const r = await chat(key, body, { ...ttl, tiers: swapped });
    expect(r.res.headers.get("x-cache")).toBe("MISS");
    await r.text();
  });

  it("is an HMAC under the secret: another secret gives another URL, and without a secret nothing is cached", async () => {
    const input = {
      keyId: "key_1",
      model: "mistral-tiny",
      backendModel: "tiny",
      promptIds: [1, 2, 3],
      temperature: 0,
      topP: 1,
      seed: undefined,
      stop: [],
      maxTokens: 5,
    };
    const a = (await cacheKey(input, "a".repeat(32))).url;
    expect((await cacheKey(input, "a".repeat(32))).url).toBe(a);
    expect((await cacheKey(input, "b".repeat(32))).url).not.toBe(a);
    // Not the unkeyed SHA-256 of the same fields (what anyone could compute).
    expect((await cacheKey({ ...input, backendModel: "tiny-v2" }, "a".repeat(32))).url).not.toBe(a);

    const body = { messages: fresh(), temperature: 0, max_tokens: 20 };
    for (const secret of [undefined, "short"]) {
      expect((await chatWithSecret(secret, body)).headers.get("x-cache")).toBe("BYPASS");
    }
  });
});

describe("tokenized-turn cache", () => {
  it("a long turn cached for one salt is not a hit for another", () => {
    const turn = [{ role: "user" as const, content: `secret plan ${Date.now()} `.repeat(40) }];
    const base = turnCacheHits();
    const ids = applyChatTemplate(turn, "salt-a");
    expect(turnCacheHits()).toBe(base);
    expect(applyChatTemplate(turn, "salt-b")).toEqual(ids);
    expect(turnCacheHits()).toBe(base); // another tenant: computed afresh
    applyChatTemplate(turn, "salt-a");
    expect(turnCacheHits()).toBe(base + 1);
  });
});
