/**
 * GET /metrics on a real backend process: its own METRICS_TOKEN, and every moe_edge_* series moving by
 * exactly what real requests did (counts, not timings: each value checked is a count or a sum of tokens).
 */
import { describe, expect, it } from "vitest";
import { devModel } from "./engine-helpers";
import { parseGenerateEvent } from "../../contract/wire";
import { auth, ids, post, readEvents, readTokens, useBackend } from "./helpers/backend";

const METRICS_TOKEN = "test-metrics-token-456";

/** Prometheus text → `name{labels}` → value (labels as prom-client prints them). */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

describe("backend /metrics", () => {
  const b = useBackend(["--model", devModel("tiny")], { env: { METRICS_TOKEN } });
  const scrape = async () => {
    const res = await fetch(`${b.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    return parse(await res.text());
  };
  const v = (m: Map<string, number>, key: string) => {
    const x = m.get(key);
    if (x === undefined) throw new Error(`no series ${key}`);
    return x;
  };
  const generate = async (body: Record<string, unknown>) => {
    const res = await post(`${b.url}/v1/generate`, { model: "tiny", request_id: "m", temperature: 0, ...body });
    expect(res.status).toBe(200);
    const events = await readEvents(res);
    const done = events.at(-1)!;
    if (done.type !== "done") throw new Error("no done event");
    return { tokens: events.length - 1, done };
  };

  it("needs METRICS_TOKEN, not the backend token (and the backend token still guards /v1)", async () => {
    expect((await fetch(`${b.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${b.url}/metrics`, { headers: auth })).status).toBe(401);
    expect((await fetch(`${b.url}/v1/models`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).status).toBe(
      401,
    );
    await scrape();
  });

  it("histograms, counters and gauges move by what real requests did", async () => {
    const model = 'model_name="tiny"';
    const before = await scrape();
    // Warm-up ran before the first request: nothing from it is counted.
    expect(v(before, `moe_edge_generation_tokens_total{${model}}`)).toBe(0);
    expect(before.get(`moe_edge_time_to_first_token_seconds_count{${model}}`) ?? 0).toBe(0);

    const prompt = ids(48, 7);
    const runs = [
      await generate({ input_ids: prompt, max_tokens: 5 }),
      await generate({ input_ids: prompt, max_tokens: 5 }), // 32 of 48 from the prefix cache
    ];
    // A long generation that is decoding (its first token is out) while three more join it: their decode
    // steps batch with it, whatever the timing. Then POST /v1/cancel ends it and its stream is read out.
    const hold = await post(`${b.url}/v1/generate`, {
      model: "tiny",
      request_id: "hold",
      temperature: 0,
      input_ids: ids(30, 5),
      max_tokens: 3000,
    });
    const holdStream = await readTokens(hold, 1);
    runs.push(
      ...(await Promise.all(
        [1, 2, 3].map((s) => generate({ input_ids: ids(20, 10 + s), max_tokens: 12, request_id: `m${s}` })),
      )),
    );
    expect((await (await post(`${b.url}/v1/cancel`, { request_id: "hold" })).json()) as unknown).toEqual({
      cancelled: true,
    });
    const held = await holdStream.rest();
    const holdEvents = held.trim().split("\n").map(parseGenerateEvent);
    const holdDone = holdEvents.at(-1)!;
    if (holdDone.type !== "done") throw new Error("hold: no done event");
    expect(holdDone.finish_reason).toBe("cancelled");
    runs.push({ tokens: holdEvents.length - 1, done: holdDone });
    const tokens = runs.reduce((a, r) => a + r.tokens, 0);
    const prompts = runs.reduce((a, r) => a + r.done.usage.prompt_tokens, 0);
    const cached = runs.reduce((a, r) => a + r.done.usage.cached_tokens, 0);
    expect(cached).toBe(32);
    const withTokens = runs.filter((r) => r.tokens > 0).length;

    const m = await scrape();
    expect(v(m, `moe_edge_generation_tokens_total{${model}}`)).toBe(tokens);
    expect(v(m, `moe_edge_prompt_tokens_total{${model}}`)).toBe(prompts);
    expect(v(m, `moe_edge_prompt_tokens_cached_total{${model}}`)).toBe(32);
    expect(v(m, `moe_edge_time_to_first_token_seconds_count{${model}}`)).toBe(withTokens);
    expect(v(m, `moe_edge_inter_token_latency_seconds_count{${model}}`)).toBe(tokens - withTokens);
    expect(v(m, `moe_edge_inter_token_latency_seconds_sum{${model}}`)).toBeGreaterThan(0);
    expect(v(m, `moe_edge_request_queue_time_seconds_count{${model}}`)).toBe(runs.length);
    expect(v(m, `moe_edge_e2e_request_latency_seconds_count{${model}}`)).toBe(runs.length);
    // +Inf bucket = count: the histogram is cumulative.
    expect(v(m, `moe_edge_time_to_first_token_seconds_bucket{le="+Inf",${model}}`)).toBe(withTokens);

    const decodeSteps = v(m, `moe_edge_step_duration_seconds_count{${model},kind="decode"}`);
    const prefillSteps = v(m, `moe_edge_step_duration_seconds_count{${model},kind="prefill"}`);
    expect(prefillSteps).toBe(runs.length); // every prompt fits one chunk
    expect(decodeSteps).toBeGreaterThan(0);
    // One name per series: no second, older name for any of them.
    expect([...m.keys()].filter((k) => k.startsWith("backend_"))).toEqual([]);
    expect(v(m, `moe_edge_step_duration_seconds_sum{${model},kind="decode"}`)).toBeGreaterThan(0);
    // Each generated token after the first came out of one decode step; the sum of batch sizes counts them.
    expect(v(m, `moe_edge_batch_size_sum{${model},kind="decode"}`)).toBe(
      tokens - withTokens + runs.filter((r) => r.done.finish_reason === "stop" && r.tokens > 0).length,
    );
    expect(v(m, `moe_edge_batch_size_count{${model},kind="decode"}`)).toBeLessThan(
      v(m, `moe_edge_batch_size_sum{${model},kind="decode"}`),
    );
    expect(v(m, `moe_edge_batch_size_bucket{le="1",${model},kind="decode"}`)).toBeLessThan(decodeSteps);

    expect(v(m, `moe_edge_request_success_total{${model},finished_reason="length"}`)).toBe(
      runs.filter((r) => r.done.finish_reason === "length").length,
    );
    expect(v(m, `moe_edge_request_success_total{${model},finished_reason="cancelled"}`)).toBe(1);
    expect(v(m, `moe_edge_num_preemptions_total{${model}}`)).toBe(0);
    expect(
      v(m, `moe_edge_prefix_cache_hits_total{${model}}`) - v(before, `moe_edge_prefix_cache_hits_total{${model}}`),
    ).toBe(32);
    expect(v(m, `moe_edge_prefix_cache_hit_rate{${model}}`)).toBeGreaterThan(0);
    // Idle again: nothing holds KV, every block is free.
    expect(v(m, `moe_edge_num_requests_running{${model}}`)).toBe(0);
    expect(v(m, `moe_edge_kv_cache_blocks_used{${model}}`)).toBe(0);
    expect(v(m, `moe_edge_kv_cache_blocks_free{${model}}`)).toBeGreaterThan(0);
    expect(v(m, "process_resident_memory_bytes")).toBeGreaterThan(0);
  });

  it("counts the tokens a response_format grammar forced (jump-forward) and the chunk steps that fed them", async () => {
    const model = 'model_name="tiny"';
    const before = await scrape();
    const schema = {
      type: "object",
      properties: { answer: { const: "a constant answer, forced after its first byte" } },
      required: ["answer"],
      additionalProperties: false,
    };
    const run = await generate({
      input_ids: ids(12, 3),
      max_tokens: 60,
      response_format: { type: "json_schema", schema },
    });
    const m = await scrape();
    const delta = (name: string) => v(m, `${name}{${model}}`) - v(before, `${name}{${model}}`);
    const generated = run.done.usage.completion_tokens;
    expect(delta("moe_edge_generation_tokens_total")).toBe(generated);
    // Only the first byte of the document and the space after ':' are choices; the rest is forced.
    expect(delta("moe_edge_forced_tokens_total")).toBeGreaterThan(generated / 2);
    expect(delta("moe_edge_forced_tokens_total")).toBeLessThan(generated);
    expect(delta("moe_edge_chunk_steps_total")).toBeGreaterThan(0);
  });

  it("KV blocks in use show while a generation holds its slot", async () => {
    const res = await post(`${b.url}/v1/generate`, {
      model: "tiny",
      input_ids: ids(40, 9),
      max_tokens: 3000,
      request_id: "hold",
    });
    const reader = res.body!.getReader();
    await reader.read(); // the first token: prompt rows are in the pool
    const m = await scrape();
    expect(v(m, 'moe_edge_num_requests_running{model_name="tiny"}')).toBe(1);
    expect(v(m, 'moe_edge_kv_cache_blocks_used{model_name="tiny"}')).toBeGreaterThanOrEqual(3); // 41+ rows / 16
    expect(v(m, 'moe_edge_kv_cache_usage_perc{model_name="tiny"}')).toBeGreaterThan(0);
    await reader.cancel();
  });
});
