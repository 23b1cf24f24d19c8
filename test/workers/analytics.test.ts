/**
 * The Analytics Engine dataset (worker/api/analytics.ts): one data point per metered request, written
 * where its log line is, with tier, status, billed tokens, cost and latency, and never an error in the
 * request path.
 *
 * Miniflare's local ANALYTICS binding (from wrangler.toml) accepts points and keeps nothing, so it cannot
 * be read back. Each request here therefore runs against a recorder that keeps every point and passes it
 * on to that real binding: the recorder shows the fields, the real binding shows the writes are accepted.
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import worker from "../../worker/index";
import { FakeBackend } from "./chat-fake-backend";
import { newKey, sseEvents, tiersJson } from "./chat-harness";

interface Point {
  indexes: string[];
  blobs: string[];
  doubles: number[];
}

class Recorder implements AnalyticsEngineDataset {
  readonly points: Point[] = [];
  readonly realErrors: unknown[] = [];
  writeDataPoint(p?: AnalyticsEngineDataPoint): void {
    this.points.push(p as Point);
    try {
      env.ANALYTICS!.writeDataPoint(p);
    } catch (err) {
      this.realErrors.push(err);
      throw err;
    }
  }
}

/** Calls the worker with `analytics` as its ANALYTICS binding; resolves after all its waitUntil work. */
async function send(
  path: string,
  body: unknown,
  analytics: AnalyticsEngineDataset | undefined,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  const ctx = createExecutionContext();
  const req = new Request(`https://edge.test${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const res = await worker.fetch(req, { ...env, TIERS: tiersJson(), ANALYTICS: analytics }, ctx);
  const text = await res.text();
  await waitOnExecutionContext(ctx);
  return { status: res.status, text };
}

const chatBody = (extra: Record<string, unknown> = {}) => ({
  model: "mistral-tiny",
  messages: [{ role: "user", content: `Analytics ${n++}` }],
  temperature: 0,
  ...extra,
});

let key: string;
let keyId: string;
let backend: FakeBackend;
let rec: Recorder;
let n = 0;

beforeAll(async () => {
  // wrangler.toml's dataset, as miniflare runs it: a real binding that accepts points.
  expect(typeof env.ANALYTICS?.writeDataPoint).toBe("function");
  ({ key, id: keyId } = await newKey());
});
beforeEach(() => {
  backend = new FakeBackend();
  backend.install();
  rec = new Recorder();
});

/** The one point this test's requests wrote, after checking there is exactly one per request. */
function onlyPoint(requests = 1): Point {
  expect(rec.points).toHaveLength(requests);
  expect(rec.realErrors).toEqual([]);
  const p = rec.points.at(-1)!;
  expect(p.indexes).toEqual([keyId]);
  expect(new TextEncoder().encode(keyId).length).toBeLessThanOrEqual(96); // Analytics Engine's index limit
  return p;
}

describe("analytics: one data point per request", () => {
  it("a chat completion: tier, endpoint, status, billed tokens, the reported cost, latency and TTFT", async () => {
    const r = await send("/v1/chat/completions", chatBody(), rec);
    expect(r.status).toBe(200);
    const u = JSON.parse(r.text).usage;
    const p = onlyPoint();
    expect(p.blobs).toEqual(["mistral-tiny", "chat", "200", ""]);
    const [status, prompt, cached, completion, cost, latency, ttft] = p.doubles;
    expect([status, prompt, cached, completion, cost]).toEqual([
      200,
      u.prompt_tokens,
      u.prompt_tokens_details.cached_tokens,
      u.completion_tokens,
      u.cost_micros,
    ]);
    expect(cost).toBeGreaterThan(0);
    expect(latency).toBeGreaterThanOrEqual(0);
    expect(ttft).toBeGreaterThanOrEqual(0);
    expect(ttft).toBeLessThanOrEqual(latency!);
  });

  it("a stream: written once, when it ends, with the final usage", async () => {
    const r = await send(
      "/v1/chat/completions",
      chatBody({ stream: true, stream_options: { include_usage: true } }),
      rec,
    );
    const events = sseEvents(r.text);
    const u = (events.at(-2) as { usage: { prompt_tokens: number; completion_tokens: number; cost_micros: number } })
      .usage;
    const p = onlyPoint();
    expect(p.blobs).toEqual(["mistral-tiny", "chat", "200", ""]);
    expect(p.doubles.slice(0, 5)).toEqual([200, u.prompt_tokens, 0, u.completion_tokens, u.cost_micros]);
  });

  it("a response-cache hit: HIT, the prompt billed as cached, nothing generated", async () => {
    const body = chatBody();
    const ttl = { "x-cache-ttl": "60" };
    await send("/v1/chat/completions", body, rec, ttl);
    expect(rec.points[0]!.blobs[3]).toBe("MISS");
    const hit = await send("/v1/chat/completions", body, rec, ttl);
    const u = JSON.parse(hit.text).usage;
    const p = onlyPoint(2);
    expect(p.blobs).toEqual(["mistral-tiny", "chat", "200", "HIT"]);
    expect(p.doubles.slice(0, 5)).toEqual([200, u.prompt_tokens, u.prompt_tokens, 0, u.cost_micros]);
  });

  it("errors: a 400 after the tier is known, an unknown model (its name not recorded) and a failed backend", async () => {
    const long = await send(
      "/v1/chat/completions",
      chatBody({ messages: [{ role: "user", content: "x ".repeat(400) }] }),
      rec,
    );
    expect(long.status).toBe(400);
    expect(onlyPoint().blobs).toEqual(["mistral-tiny", "chat", "400", ""]);
    expect(onlyPoint().doubles.slice(0, 5)).toEqual([400, 0, 0, 0, 0]);
    expect(onlyPoint().doubles[6]).toBe(-1);

    const unknown = await send("/v1/chat/completions", chatBody({ model: "no-such-model-4242" }), rec);
    expect(unknown.status).toBe(404);
    expect(onlyPoint(2).blobs).toEqual(["(unknown)", "chat", "404", ""]);

    for (const host of ["r1.test", "r2.test", "r3.test"]) backend.set(host, { kind: "status", status: 500 });
    const failed = await send("/v1/chat/completions", chatBody(), rec);
    expect(failed.status).toBeGreaterThanOrEqual(500);
    const p = onlyPoint(3);
    expect(p.blobs).toEqual(["mistral-tiny", "chat", String(failed.status), ""]);
    expect(p.doubles.slice(0, 5)).toEqual([failed.status, 0, 0, 0, 0]);
  });

  it("embeddings: endpoint and prompt tokens", async () => {
    const r = await send("/v1/embeddings", { model: "mistral-embed", input: ["a b c", "d"] }, rec);
    expect(r.status).toBe(200);
    const u = JSON.parse(r.text).usage;
    const p = onlyPoint();
    expect(p.blobs).toEqual(["mistral-embed", "embeddings", "200", ""]);
    expect(p.doubles.slice(0, 5)).toEqual([200, u.prompt_tokens, 0, 0, u.cost_micros]);
  });

  it("never breaks a request: no binding is a no-op, and a throwing binding is ignored", async () => {
    expect((await send("/v1/chat/completions", chatBody(), undefined)).status).toBe(200);
    const broken: AnalyticsEngineDataset = {
      writeDataPoint: () => {
        throw new Error("dataset unavailable");
      },
    };
    const r = await send("/v1/chat/completions", chatBody(), broken);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).object).toBe("chat.completion");
  });
});
