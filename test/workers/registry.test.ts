import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { ReplicaReport } from "../../contract/registry";
import { parseAllowlist, urlAllowed } from "../../worker/registry/allowlist";
import { EXPIRE_MS } from "../../worker/registry/replica-registry";
import { setLiveSnapshot } from "../../worker/serving/live-replicas";
import { ReplicaRouter, routingKey } from "../../worker/serving/router";
import { FakeBackend } from "./chat-fake-backend";
import { call, chat, newKey } from "./chat-harness";

const TOKEN = "test-registry-token-0123456789abcdef";
const ADMIN = env.ADMIN_TOKEN;
const vars = { REGISTRY_TOKEN: TOKEN, REGISTRY_ALLOWED_URLS: "http://r*.test, http://127.0.0.1:*" };

const report = (url: string, o: Partial<ReplicaReport> = {}): ReplicaReport => ({
  url,
  instance: `inst-${url}`,
  models: ["tiny", "small"],
  version: "0.1.0+test",
  state: "ready",
  slots: 8,
  in_flight: 0,
  queue_depth: 0,
  kv_free_blocks: 100,
  served: 0,
  ...o,
});

const beat = (body: unknown, token: string | null = TOKEN, v: Record<string, string> = vars) =>
  call("/internal/registry/heartbeat", {
    method: "POST",
    body: JSON.stringify(body),
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
    vars: v,
  });

const replicas = async () =>
  (await (await call("/v1/admin/replicas", { key: ADMIN, vars })).json<{ data: Array<Record<string, unknown>> }>())
    .data;

let backend: FakeBackend;
beforeEach(async () => {
  backend = new FakeBackend();
  backend.install();
  await env.REPLICA_REGISTRY.get(env.REPLICA_REGISTRY.idFromName("replicas")).reset();
  setLiveSnapshot(null);
});

describe("replica registry", () => {
  it("a forged or unauthenticated registration is refused, and traffic never reaches the forged URL", async () => {
    expect((await beat(report("http://evil.test"), null)).res.status).toBe(401);
    expect((await beat(report("http://evil.test"), "x".repeat(40))).res.status).toBe(401);
    // The right token, a URL the operator never listed.
    const outside = await beat(report("http://evil.test"));
    expect(outside.res.status).toBe(403);
    expect((await outside.json()).error.code).toBe("url_not_allowed");
    // Look-alikes of an allowed pattern.
    for (const url of ["http://r1.test.evil.example", "http://r1.evil.test", "https://r1.test"])
      expect((await beat(report(url))).res.status, url).toBe(403);
    // Without a (long enough) REGISTRY_TOKEN the routes do not exist.
    expect((await beat(report("http://r1.test"), "short", { ...vars, REGISTRY_TOKEN: "short" })).res.status).toBe(404);
    expect(await replicas()).toEqual([]);
    const { key } = await newKey();
    for (let i = 0; i < 6; i++) expect((await chat(key, { max_tokens: 4 })).res.status).toBe(200);
    expect(backend.seen.every((s) => /^r[123]\.test$/.test(s.host))).toBe(true);
  });

  it("a registered replica is listed ready with its tiers and takes the tier's traffic; draining takes it out", async () => {
    const ack = await beat(report("http://r9.test", { served: 3 }));
    expect(ack.res.status).toBe(200);
    const { id, heartbeat_ms, expire_ms } = await ack.json();
    expect(id).toMatch(/^rep_[0-9a-f]{16}$/);
    expect(heartbeat_ms).toBeGreaterThan(0);
    expect(expire_ms).toBe(EXPIRE_MS);
    const [row] = await replicas();
    expect(row).toMatchObject({
      id,
      url: "http://r9.test",
      models: ["tiny", "small"],
      tiers: ["mistral-tiny", "mistral-small", "mistral-embed"],
      state: "ready",
      served: 3,
      kv_free_blocks: 100,
      version: "0.1.0+test",
    });
    expect(Date.parse(row.last_seen as string)).toBeGreaterThan(Date.now() - 10_000);
    const { key } = await newKey();
    for (let i = 0; i < 4; i++) expect((await chat(key, { max_tokens: 4 })).res.status).toBe(200);
    expect(new Set(backend.seen.map((s) => s.host))).toEqual(new Set(["r9.test"]));

    // Draining: out of rotation (the seed takes over while no registered replica is ready).
    await beat(report("http://r9.test", { state: "draining" }));
    // A "ready" heartbeat of the same process that arrives late cannot put it back.
    await beat(report("http://r9.test"));
    expect((await replicas())[0].state).toBe("draining");
    setLiveSnapshot(null);
    backend.seen.length = 0;
    for (let i = 0; i < 4; i++) expect((await chat(key, { max_tokens: 4 })).res.status).toBe(200);
    expect(backend.seen.some((s) => s.host === "r9.test")).toBe(false);
  });

  it("deregister removes a replica; a late heartbeat of that process does not bring it back; a restart does", async () => {
    await beat(report("http://r9.test"));
    const dereg = (instance: string) =>
      call("/internal/registry/deregister", {
        method: "POST",
        body: JSON.stringify({ url: "http://r9.test", instance }),
        headers: { authorization: `Bearer ${TOKEN}` },
        vars,
      });
    // Another process's stale deregister does not remove the live one.
    expect(await (await dereg("someone-else")).json()).toEqual({ removed: false });
    expect(await (await dereg("inst-http://r9.test")).json()).toEqual({ removed: true });
    await beat(report("http://r9.test"));
    expect(await replicas()).toEqual([]);
    await beat(report("http://r9.test", { instance: "restarted-process" }));
    expect((await replicas()).map((r) => r.state)).toEqual(["ready"]);
  });

  it("a replica that misses its heartbeats expires", async () => {
    await beat(report("http://r9.test"));
    const stub = env.REPLICA_REGISTRY.get(env.REPLICA_REGISTRY.idFromName("replicas"));
    expect(await stub.list(Date.now() + EXPIRE_MS - 500)).toHaveLength(1);
    expect(await stub.list(Date.now() + EXPIRE_MS + 1_000)).toHaveLength(0);
    expect(await replicas()).toEqual([]);
  });

  it("bad reports are 400s in the OpenAI error shape", async () => {
    const r = await beat({ ...report("http://r9.test"), models: [] });
    expect(r.res.status).toBe(400);
    expect((await r.json()).error).toMatchObject({ type: "invalid_request_error" });
    expect((await beat({ ...report("http://r9.test"), extra: 1 })).res.status).toBe(400);
  });
});

describe("allowlist", () => {
  const allow = parseAllowlist("https://gpu-*.example.com, http://127.0.0.1:*, http://10.0.0.5:8788, bogus");
  it.each([
    ["https://gpu-7.example.com", true],
    ["https://gpu-7.example.com/", true],
    ["https://gpu-7.example.com:8443", false],
    ["https://gpu-7.evil.example.com", false],
    ["https://gpu-.example.com", false],
    ["https://gpu-1.example.com.evil", false],
    ["http://gpu-7.example.com", false],
    ["https://gpu-7.example.com/v1", false],
    ["http://127.0.0.1:9000", true],
    ["http://127.0.0.1", true],
    ["http://127.0.0.2:9000", false],
    ["http://10.0.0.5:8788", true],
    ["http://10.0.0.5:8789", false],
    ["http://user:pw@10.0.0.5:8788", false],
  ])("%s -> %s", (url, ok) => expect(urlAllowed(url, allow)).toBe(ok));
  it("unset admits nothing", () => expect(urlAllowed("http://127.0.0.1:1", parseAllowlist(undefined))).toBe(false));
});

describe("load-aware routing over the live set", () => {
  const urls = ["http://a.test", "http://b.test", "http://c.test", "http://d.test"];
  it("a key stays on its replica until that replica runs hot by its reported load, then spills in rendezvous order", () => {
    const reported = new Map<string, number>();
    const r = new ReplicaRouter({ reported: (u) => reported.get(u) ?? 0 });
    const key = routingKey([1, ...Array.from({ length: 80 }, (_, i) => 300 + i)], "s");
    const order = r.rank(urls, key);
    reported.set(order[0], 4);
    expect(r.rank(urls, key)[0]).toBe(order[0]);
    reported.set(order[0], 9); // other isolates' requests queue there
    expect(r.rank(urls, key)).toEqual([order[1], order[2], order[3], order[0]]);
    for (const u of urls) reported.set(u, 9); // every replica hot: keep the cache order
    expect(r.rank(urls, key)).toEqual(order);
  });

  it("a replica the registry lists as draining is tried only after every ready one (before open circuits)", () => {
    const draining = new Set<string>();
    const r = new ReplicaRouter({ draining: (u) => draining.has(u), reported: () => 0 });
    const key = routingKey([1, ...Array.from({ length: 80 }, (_, i) => 500 + i)], "s");
    const order = r.rank(urls, key);
    draining.add(order[0]);
    expect(r.rank(urls, key)).toEqual([order[1], order[2], order[3], order[0]]);
    for (let i = 0; i < 3; i++) r.recordFailure(order[1]);
    expect(r.rank(urls, key)).toEqual([order[2], order[3], order[0], order[1]]);
  });
});
