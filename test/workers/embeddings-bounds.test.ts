/**
 * A token cap per embeddings request, and an embed the replica accepted is
 * never retried elsewhere: at the deadline it is cancelled and what the replica computed is billed.
 */
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { EMBED_DEADLINE, MAX_EMBED_TOKENS } from "../../worker/routes/embeddings";
import { FakeBackend } from "./chat-fake-backend";
import { call, newKey, tiersJson, usageRecord } from "./chat-harness";

let key: string;
let backend: FakeBackend;
const saved = { ...EMBED_DEADLINE };

beforeAll(async () => {
  key = (await newKey()).key;
});
beforeEach(() => {
  backend = new FakeBackend();
  backend.install();
});
afterEach(() => Object.assign(EMBED_DEADLINE, saved));

const embeds = () => backend.seen.filter((s) => s.path === "/v1/embed");

describe("embeddings bounds", () => {
  it("more than MAX_EMBED_TOKENS tokens in one request is a 400 naming the limit; no replica sees it", async () => {
    const input = Array.from({ length: 200 }, () => Array.from({ length: 50 }, (_, i) => 10 + i)); // 10000 tokens
    const r = await call("/v1/embeddings", {
      method: "POST",
      key,
      body: JSON.stringify({ model: "mistral-embed", input }),
    });
    expect(r.res.status).toBe(400);
    const err = (await r.json()).error;
    expect(err).toMatchObject({ code: "too_many_tokens", param: "input" });
    expect(err.message).toContain(String(MAX_EMBED_TOKENS));
    expect(embeds()).toHaveLength(0);
    // At the limit exactly: served.
    const ok = await call("/v1/embeddings", {
      method: "POST",
      key,
      body: JSON.stringify({
        model: "mistral-embed",
        input: input.slice(0, MAX_EMBED_TOKENS / 64).map(() => Array(64).fill(5)),
      }),
    });
    expect(ok.res.status).toBe(200);
  });

  it("past the deadline the replica is cancelled, not retried on another; its computed tokens are billed (504)", async () => {
    EMBED_DEADLINE.ms = 20;
    backend.set("e1.test", { kind: "embed-held", computed: 7 }).set("e2.test", { kind: "embed-held", computed: 7 });
    const tiers = tiersJson({
      "mistral-embed": {
        backends: ["http://e1.test", "http://e2.test"],
        backend_model: "small",
        context_window: 64,
        kind: "embedding",
        price: { input: 100000, cached_input: 100000, output: 0 },
      },
    });
    const r = await call("/v1/embeddings", {
      method: "POST",
      key,
      tiers,
      body: JSON.stringify({ model: "mistral-embed", input: ["one two three"] }),
    });
    expect(r.res.status).toBe(504);
    expect((await r.json()).error).toMatchObject({ type: "api_error", code: "embedding_timeout" });
    expect(embeds()).toHaveLength(1);
    expect(backend.cancels).toHaveLength(1);
    const id = r.res.headers.get("x-request-id")!;
    // 7 tokens at 100000 µ€ per million = 700000 units.
    expect(await usageRecord(id)).toMatchObject({ status: "error", prompt_tokens: 7, cost_units: 700000 });
  });
});
