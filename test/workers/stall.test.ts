/**
 * A replica that accepts a request and then says nothing ("treated as failed"). The watchdog's
 * timers are replaced by ones the test fires on its own events (the fake replica went silent, the client
 * has its tokens), so no test waits for a clock.
 *  - silent before its first event (or before its headers): the next replica serves, one ledger row;
 *  - silent after its first token: the stream ends with finish_reason "error" and the error event, and
 *    the ledger bills exactly the tokens the client was told it received.
 */
import { SELF } from "cloudflare:test";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { GenerateRequest } from "../../contract/wire";
import { replicaTimeouts } from "../../worker/serving/timeouts";
import { watchdog, type WatchdogKind } from "../../worker/serving/watchdog";
import { FakeBackend } from "./chat-fake-backend";
import { PRICE, chat, newKey, sseEvents, tiersJson, usageRecord } from "./chat-harness";

interface Armed {
  kind: WatchdogKind;
  ms: number;
  live: boolean;
  fire: () => void;
}

/** Watchdog timers that fire only when the test says so. */
class ManualWatchdog {
  readonly armed: Armed[] = [];
  private waiters: Array<{ kind: WatchdogKind; resolve: (a: Armed) => void }> = [];
  private readonly original = watchdog.arm;

  install(): void {
    watchdog.arm = (kind, ms, fire) => {
      const a: Armed = { kind, ms, live: true, fire };
      this.armed.push(a);
      for (const w of this.waiters.filter((x) => x.kind === kind)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(a);
      }
      return () => void (a.live = false);
    };
  }

  restore(): void {
    watchdog.arm = this.original;
  }

  /** A timer of `kind` armed now, or the next one to be. */
  live(kind: WatchdogKind): Promise<Armed> {
    const now = this.armed.find((a) => a.kind === kind && a.live);
    if (now) return Promise.resolve(now);
    return new Promise((resolve) => this.waiters.push({ kind, resolve }));
  }

  fire(a: Armed): void {
    expect(a.live).toBe(true);
    a.live = false;
    a.fire();
  }
}

const VARS = { STALL_TIMEOUT_MS: "1234", FIRST_TOKEN_TIMEOUT_MS: "5678" };
const hosts = ["r1.test", "r2.test", "r3.test"];
let key: string;
let backend: FakeBackend;
let wd: ManualWatchdog;

beforeAll(async () => {
  key = (await newKey()).key;
});
beforeEach(() => {
  backend = new FakeBackend();
  backend.install();
  wd = new ManualWatchdog();
  wd.install();
});
afterEach(() => wd.restore());

const generates = () => backend.seen.filter((s) => s.path === "/v1/generate");

/** Reads SSE frames until `until` holds for the content so far; returns the reader to go on with. */
async function readUntil(res: Response, until: (content: string) => boolean) {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const content = () =>
    sseEvents(text.slice(0, text.lastIndexOf("\n\n") + 2))
      .map((e) => (e === "[DONE]" ? "" : ((e as any).choices?.[0]?.delta?.content ?? "")))
      .join("");
  while (!until(content())) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`stream ended early: ${text}`);
    text += value;
  }
  const rest = async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return text;
      text += value;
    }
  };
  return { rest };
}

describe("a replica silent before its first token", () => {
  for (const stream of [true, false]) {
    it(`${stream ? "streaming" : "non-streaming"}: is cancelled and the next replica serves; one ledger row`, async () => {
      for (const h of hosts) backend.set(h, { kind: "hang" });
      const silent = backend.nextHang();
      const r = chat(key, { stream, max_tokens: 50 }, { vars: VARS });
      const id = await silent;
      const timer = await wd.live("first_event");
      expect(timer.ms).toBe(5678);
      const stuck = generates()[0]!.host;
      for (const h of hosts) if (h !== stuck) backend.set(h, { kind: "ok" });
      wd.fire(timer);
      const res = await r;
      const body = await res.text();
      expect(res.res.status, body).toBe(200);
      const text = stream
        ? sseEvents(body)
            .map((e) => (e === "[DONE]" ? "" : ((e as any).choices[0].delta.content ?? "")))
            .join("")
        : JSON.parse(body).choices[0].message.content;
      expect(text).toBe(backend.defaultText);
      // The stuck replica was asked to stop and its fetch aborted; the request went on elsewhere.
      expect(backend.cancels).toContain(id);
      expect(backend.finished.get(id)).toBeDefined();
      expect(generates().map((g) => g.host)).toEqual([stuck, expect.not.stringMatching(stuck)]);
      expect(generates().every((g) => (g.body as GenerateRequest).request_id === id)).toBe(true);
      const rec = await usageRecord(res.res.headers.get("x-request-id")!);
      expect(rec).toMatchObject({ status: "ok", completion_tokens: backend.defaultText.length });
    });
  }

  it("one that never sends its headers is left after min(15 s, STALL_TIMEOUT_MS)", async () => {
    for (const h of hosts) backend.set(h, { kind: "hang", headers: false });
    const silent = backend.nextHang();
    const r = chat(key, { stream: true }, { vars: VARS });
    await silent;
    const timer = await wd.live("headers");
    expect(timer.ms).toBe(1234);
    const stuck = generates()[0]!.host;
    for (const h of hosts) if (h !== stuck) backend.set(h, { kind: "ok" });
    wd.fire(timer);
    const res = await r;
    const body = await res.text();
    expect(sseEvents(body).at(-1)).toBe("[DONE]");
    expect(await usageRecord(res.res.headers.get("x-request-id")!)).toMatchObject({
      status: "ok",
      completion_tokens: backend.defaultText.length,
    });
  });
});

describe("a replica silent after its first token", () => {
  it("ends the stream with finish_reason error and the error event; bills exactly what the client received", async () => {
    const one = tiersJson({
      "mistral-tiny": { backends: ["http://r1.test"], backend_model: "tiny", context_window: 256, price: PRICE },
    });
    backend.set("r1.test", { kind: "hang", after: 6 });
    const silent = backend.nextHang();
    const r = await chat(key, { stream: true, stream_options: { include_usage: true } }, { tiers: one, vars: VARS });
    expect(r.res.status).toBe(200);
    const sse = await readUntil(r.res, (c) => c.length >= 6);
    const id = await silent;
    const timer = await wd.live("stall");
    expect(timer.ms).toBe(1234);
    const cancelled = backend.nextCancel();
    wd.fire(timer);
    const events = sseEvents(await sse.rest());
    const content = events.map((e) => (e === "[DONE]" ? "" : ((e as any).choices?.[0]?.delta?.content ?? ""))).join("");
    expect(content).toBe(backend.defaultText.slice(0, 6));
    const last = events.at(-2) as any;
    expect(last.choices[0].finish_reason).toBe("error");
    expect(last.usage.completion_tokens).toBe(6);
    expect(events.at(-1)).toMatchObject({ error: { code: "backend_error" } });
    expect(events).not.toContain("[DONE]");
    expect(await cancelled).toBe(id);
    expect(backend.finished.get(id)).toEqual({ finish: "aborted", completion: 6 });
    await r.settled();
    const row = await usageRecord(id);
    expect(row).toMatchObject({ status: "error", completion_tokens: 6, prompt_tokens: last.usage.prompt_tokens });
    // The replica ran on for 3 more steps before it saw the cancel, and its usage report says so: the
    // client received 6, so 6 stays billed (README "Backend failures").
    const now = Date.now();
    const report = {
      id: `rec-${id}`,
      request_id: id,
      kind: "generate",
      key_id: row!.key_id,
      tier: "mistral-tiny",
      model: "tiny",
      prompt_tokens: row!.prompt_tokens,
      cached_tokens: 0,
      completion_tokens: 9,
      finish_reason: "cancelled",
      started_at: now,
      ended_at: now,
      backend: "r1.test",
    };
    const delivered = await SELF.fetch("https://edge.test/internal/usage", {
      method: "POST",
      headers: { authorization: "Bearer test-usage-token-0123456789abcdef", "content-type": "application/json" },
      body: JSON.stringify({ records: [report] }),
    });
    expect(delivered.status).toBe(200);
    expect(await usageRecord(id)).toMatchObject({ status: "error", completion_tokens: 6, cost_units: row!.cost_units });
  });
});

describe("replicaTimeouts", () => {
  it("reads the vars, caps the header wait at 15 s, and falls back to the defaults on a bad value", () => {
    expect(replicaTimeouts({ STALL_TIMEOUT_MS: "1234", FIRST_TOKEN_TIMEOUT_MS: "5678" })).toEqual({
      headersMs: 1234,
      firstEventMs: 5678,
      stallMs: 1234,
    });
    expect(replicaTimeouts({})).toEqual({ headersMs: 15_000, firstEventMs: 120_000, stallMs: 30_000 });
    expect(replicaTimeouts({ STALL_TIMEOUT_MS: "0", FIRST_TOKEN_TIMEOUT_MS: "soon" })).toEqual({
      headersMs: 15_000,
      firstEventMs: 120_000,
      stallMs: 30_000,
    });
  });
});
