import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { applyChatTemplate } from "../../worker/tokenizer";
import { FakeBackend, byteIds } from "./chat-fake-backend";
import { chat, newKey, sseEvents, usageRecord } from "./chat-harness";

let key: string;
let backend: FakeBackend;
const ttl = { headers: { "x-cache-ttl": "60" } };
let n = 0;
/** A fresh prompt per test: the Cache API is shared by the whole test file. */
const fresh = () => [{ role: "user" as const, content: `Cache me ${n++} ${Date.now()}` }];
const generateCalls = () => backend.seen.filter((s) => s.path === "/v1/generate").length;

beforeAll(async () => {
  key = (await newKey()).key;
});
beforeEach(() => {
  backend = new FakeBackend();
  backend.install();
});

describe("response cache (x-cache-ttl)", () => {
  it("a deterministic request is a MISS, then a HIT served without the backend and billed as cached prompt only", async () => {
    const messages = fresh();
    const body = { messages, temperature: 0, max_tokens: 50 };
    const miss = await chat(key, body, ttl);
    const first = await miss.json();
    expect(miss.res.headers.get("x-cache")).toBe("MISS");
    expect(generateCalls()).toBe(1);

    const hit = await chat(key, body, ttl);
    const second = await hit.json();
    expect(hit.res.headers.get("x-cache")).toBe("HIT");
    expect(generateCalls()).toBe(1);
    const p = applyChatTemplate(messages).length;
    const k = byteIds(backend.defaultText).length;
    expect(second.choices).toEqual(first.choices);
    expect(second.id).not.toBe(first.id);
    expect(k).toBeGreaterThan(0);
    // A hit reports (and bills) the cached prompt only.
    // cost_micros: p × 14000 units, rounded up to whole micro-euros (1e6 units each).
    const costMicros = Math.ceil((p * 14000) / 1e6);
    expect(second.usage).toEqual({
      prompt_tokens: p,
      completion_tokens: 0,
      total_tokens: p,
      prompt_tokens_details: { cached_tokens: p },
      cost_micros: costMicros,
    });
    const rec = await usageRecord(hit.res.headers.get("x-request-id")!);
    expect(rec).toMatchObject({ status: "cache_hit", prompt_tokens: p, cached_tokens: p, completion_tokens: 0 });
    // p cached tokens at 14000 micro-EUR per million = p * 14000 * 1e6 / 1e6 units of 1e-12 EUR.
    expect(BigInt(rec!.cost_units)).toBe(BigInt(p) * 14000n);
  });

  it("a streaming request replays a cached result as SSE", async () => {
    const messages = fresh();
    await (await chat(key, { messages, random_seed: 5 }, ttl)).text();
    const r = await chat(key, { messages, random_seed: 5, stream: true, stream_options: { include_usage: true } }, ttl);
    expect(r.res.headers.get("x-cache")).toBe("HIT");
    const events = sseEvents(await r.text()) as any[];
    expect(generateCalls()).toBe(1);
    expect(events.at(-1)).toBe("[DONE]");
    expect(events[0].choices[0].delta).toEqual({ role: "assistant", content: "" });
    expect(
      events
        .slice(0, -2)
        .map((e) => e.choices[0].delta.content)
        .join(""),
    ).toBe(backend.defaultText);
    expect(events.at(-3).choices[0].finish_reason).toBe("stop");
    expect(events.at(-2).choices).toEqual([]);
  });

  it("a streamed MISS is stored too", async () => {
    const messages = fresh();
    await (await chat(key, { messages, temperature: 0, stream: true }, ttl)).text();
    const r = await chat(key, { messages, temperature: 0 }, ttl);
    expect(r.res.headers.get("x-cache")).toBe("HIT");
    expect((await r.json()).choices[0].message.content).toBe(backend.defaultText);
  });

  it("any parameter change, or another key, misses", async () => {
    const messages = fresh();
    await (await chat(key, { messages, temperature: 0 }, ttl)).text();
    const other = (await newKey()).key;
    for (const [k, body] of [
      [key, { messages, temperature: 0, max_tokens: 7 }],
      [key, { messages, temperature: 0, stop: ["x"] }],
      [key, { messages, temperature: 0, top_p: 0.5 }],
      [key, { messages, seed: 1 }],
      [key, { messages: fresh(), temperature: 0 }],
      [other, { messages, temperature: 0 }],
    ] as const) {
      const r = await chat(k, body, ttl);
      expect(r.res.headers.get("x-cache"), JSON.stringify(body)).toBe("MISS");
      await r.text();
    }
  });

  it("non-deterministic requests bypass; no header means no caching at all", async () => {
    const messages = fresh();
    for (let i = 0; i < 2; i++) {
      const r = await chat(key, { messages, temperature: 0.7 }, ttl);
      expect(r.res.headers.get("x-cache")).toBe("BYPASS");
      await r.text();
    }
    for (let i = 0; i < 2; i++) {
      const r = await chat(key, { messages, temperature: 0 });
      expect(r.res.headers.get("x-cache")).toBeNull();
      await r.text();
    }
    expect(generateCalls()).toBe(4);
  });

  it("a failed generation is not cached", async () => {
    const messages = fresh();
    for (const h of ["r1.test", "r2.test", "r3.test"]) backend.set(h, { kind: "break-after", text: "part" });
    await (await chat(key, { messages, temperature: 0, stream: true }, ttl)).text();
    for (const h of ["r1.test", "r2.test", "r3.test"]) backend.set(h, { kind: "ok" });
    const r = await chat(key, { messages, temperature: 0 }, ttl);
    expect(r.res.headers.get("x-cache")).toBe("MISS");
    await r.text();
  });
});
