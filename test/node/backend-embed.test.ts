/**
 * Issue 15 #1, backend side: embeddings run one input per engine job, interleaved with decode steps,
 * and stop on cancel (AbortSignal, POST /v1/cancel, client disconnect), billing what was computed.
 * Orderings are observed through engine hooks and receiver/metrics events, never through timing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EmbedStoppedBody, GenerateParams } from "../../contract/wire";
import { EmbedStopped, Engine, DEFAULT_ENGINE_OPTIONS } from "../../gpu-backend/engine/engine";
import { loadModelRunner, type ModelRunner } from "../../gpu-backend/engine/model-runner";
import { devModel } from "./engine-helpers";
import { ids, metric, post, spawnBackend, type Backend } from "./helpers/backend";
import { tmpDirs } from "./helpers/tmp";
import { startReceiver, type Receiver } from "./helpers/usage-receiver";

const tmpJournal = tmpDirs("backend-journal-");

const gen = (over: Partial<GenerateParams> = {}): GenerateParams => ({
  model: "tiny",
  input_ids: ids(12),
  max_tokens: 100_000,
  temperature: 0,
  top_p: 1,
  top_k: 0,
  stop_token_ids: [],
  cache_salt: "",
  request_id: "g",
  ...over,
});

describe("engine embeddings", () => {
  let runner: ModelRunner;
  let hidden: ModelRunner["hidden"];
  /** Called before each forward of an embed input (1-based call number). */
  let onHidden: (call: number) => void = () => {};
  let calls = 0;
  beforeAll(async () => {
    runner = await loadModelRunner(devModel("tiny"), { threads: 1, spin: false });
    hidden = runner.hidden.bind(runner);
    runner.hidden = (x: number[]) => {
      onHidden(++calls);
      return hidden(x);
    };
  });
  const fresh = () => {
    calls = 0;
    onHidden = () => {};
    return new Engine(runner, DEFAULT_ENGINE_OPTIONS);
  };

  it("a running generation keeps decoding between embed inputs (one input per step, not one exclusive job)", async () => {
    const engine = fresh();
    const log: string[] = [];
    onHidden = () => log.push("E");
    engine.onStep = (kind) => log.push(kind === "decode" ? "D" : "P");
    let firstToken!: () => void;
    const started = new Promise<void>((r) => (firstToken = r));
    const cancel = engine.submit(gen(), (out) => out.ids.length > 0 && firstToken());
    await started;
    const out = await engine.embed(Array.from({ length: 6 }, (_, i) => ids(40, i)));
    cancel();
    expect(out).toHaveLength(6);
    const embeds = log.flatMap((x, i) => (x === "E" ? [i] : []));
    expect(embeds).toHaveLength(6);
    // Between any two embed inputs at least one decode step ran.
    for (let k = 1; k < embeds.length; k++) expect(log.slice(embeds[k - 1]! + 1, embeds[k]!)).toContain("D");
  });

  it("an aborted signal stops before the next input; EmbedStopped carries the tokens computed", async () => {
    const engine = fresh();
    const ac = new AbortController();
    onHidden = (call) => call === 2 && ac.abort();
    const inputs = [ids(7), ids(11, 2), ids(13, 3), ids(17, 4)];
    const e = await engine.embed(inputs, { signal: ac.signal }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EmbedStopped);
    expect(e).toMatchObject({ reason: "cancelled", computedTokens: 18 });
    expect(calls).toBe(2);
    // Aborted before it starts: nothing is computed.
    calls = 0;
    await expect(engine.embed(inputs, { signal: AbortSignal.abort() })).rejects.toMatchObject({ computedTokens: 0 });
    expect(calls).toBe(0);
  });

  it("a failing forward is EmbedStopped('error') with what was computed before it; the engine keeps serving", async () => {
    const engine = fresh();
    onHidden = (call) => {
      if (call === 3) throw new Error("boom");
    };
    const e = await engine.embed([ids(5), ids(6), ids(7)]).catch((x: unknown) => x);
    expect(e).toMatchObject({ reason: "error", computedTokens: 11 });
    onHidden = () => {};
    expect(await engine.embed([ids(5)])).toHaveLength(1);
  });
});

describe("backend /v1/embed cancel", () => {
  const USAGE_TOKEN = "usage-token-embed";
  let r: Receiver;
  let b: Backend;
  // Long enough that it is still running when the cancel lands (hundreds of forwards of 2000 tokens).
  const inputs = Array.from({ length: 200 }, (_, i) => ids(2000, i));
  const total = inputs.length * 2000;
  beforeAll(async () => {
    r = await startReceiver(USAGE_TOKEN);
    const dir = await tmpJournal();
    b = await spawnBackend(
      ["--model", devModel("tiny"), "--journal-dir", dir, "--usage-url", r.url, "--usage-retry-base-ms", "5"],
      { env: { USAGE_TOKEN } },
    );
    await b.ready;
  });
  afterAll(async () => {
    b?.proc.kill("SIGKILL");
    await r?.close();
  });
  const recordOf = async (id: string) => {
    await r.until(() => r.received.some((x) => x.request_id === id));
    return r.received.filter((x) => x.request_id === id);
  };

  it("POST /v1/cancel stops it: 409 with the tokens computed, and one usage record with the same count", async () => {
    const res = post(`${b.url}/v1/embed`, { model: "tiny", inputs, request_id: "req_emb_c", key_id: "key_e" });
    // Each cancel call is answered; it is true once the embed is registered (it cannot be over by then).
    while (
      !((await (await post(`${b.url}/v1/cancel`, { request_id: "req_emb_c" })).json()) as { cancelled: boolean })
        .cancelled
    );
    const answer = await res;
    expect(answer.status).toBe(409);
    const body = (await answer.json()) as EmbedStoppedBody;
    expect(body.error).toMatchObject({ code: "cancelled", param: null });
    expect(body.usage.prompt_tokens % 2000).toBe(0);
    expect(body.usage.prompt_tokens).toBeLessThan(total);
    expect(await recordOf("req_emb_c")).toEqual([
      expect.objectContaining({
        kind: "embed",
        finish_reason: "cancelled",
        prompt_tokens: body.usage.prompt_tokens,
        key_id: "key_e",
      }),
    ]);
  });

  it("a client disconnect stops it too, and the record says what was computed", async () => {
    const ac = new AbortController();
    const res = post(
      `${b.url}/v1/embed`,
      { model: "tiny", inputs, request_id: "req_emb_d" },
      undefined,
      ac.signal,
    ).catch(() => null);
    while ((await metric(b, "moe_edge_in_flight_requests")) < 1);
    ac.abort();
    expect(await res).toBeNull();
    const [rec] = await recordOf("req_emb_d");
    expect(rec).toMatchObject({ finish_reason: "cancelled" });
    expect(rec!.prompt_tokens).toBeLessThan(total);
    // The engine is free again: a small embed completes.
    const ok = await post(`${b.url}/v1/embed`, { model: "tiny", inputs: [ids(5)], request_id: "req_emb_ok" });
    expect(ok.status).toBe(200);
  });
});
