/**
 * Batches end to end inside the Workers runtime: the real routes, D1, R2, KeyLimiter and ledger; the
 * queue's messages driven by hand (batch-harness.ts) and the backend a test double (chat-fake-backend.ts).
 * The real backend and the real queue are exercised by test/node/e2e-batch.test.ts.
 */
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { GenerateRequest } from "../../contract/wire";
import { FakeBackend, gate } from "./chat-fake-backend";
import { PRICE, chat, newKey, usageRecord } from "./chat-harness";
import { QueueDriver, chatLine, get, post, upload } from "./batch-harness";

let backend: FakeBackend;
beforeEach(() => {
  backend = new FakeBackend();
  backend.install();
});

type Json = Record<string, any>;
const jsonl = (text: string) =>
  text
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Json);

async function createBatch(driver: QueueDriver, key: string, lines: string[], endpoint = "/v1/chat/completions") {
  const file = (await (await upload(key, `${lines.join("\n")}\n`)).json()) as Json;
  const res = await post(driver, key, "/batches", {
    input_file_id: file.id,
    endpoint,
    completion_window: "24h",
    metadata: { job: "t" },
  });
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as Json;
}

const retrieve = async (key: string, id: string) => (await (await get(key, `/batches/${id}`)).json()) as Json;
const content = async (key: string, fileId: string) => jsonl(await (await get(key, `/files/${fileId}/content`)).text());
const ledgerRows = async (batchId: string) =>
  (await env.DB.prepare("SELECT * FROM usage_records WHERE batch_id = ? ORDER BY request_id").bind(batchId).all<Json>())
    .results;

describe("batches", () => {
  it("runs every line through the chat path at half price; bad lines and an unknown model land in the error file", async () => {
    const { key } = await newKey();
    const driver = new QueueDriver();
    const b = await createBatch(driver, key, [
      chatLine("a"),
      "{oops",
      chatLine("b", { max_tokens: 6 }),
      chatLine("c", {}, "mistral-nope"),
    ]);
    expect(b).toMatchObject({
      object: "batch",
      status: "validating",
      endpoint: "/v1/chat/completions",
      metadata: { job: "t" },
    });
    expect(b.request_counts).toEqual({ total: 0, completed: 0, failed: 0 });

    await driver.step(1); // validation
    const mid = await retrieve(key, b.id);
    expect(mid.status).toBe("in_progress");
    expect(mid.request_counts).toEqual({ total: 4, completed: 0, failed: 1 });
    await driver.drain();

    const done = await retrieve(key, b.id);
    expect(done.status).toBe("completed");
    expect(done.request_counts).toEqual({ total: 4, completed: 2, failed: 2 });
    for (const t of ["in_progress_at", "finalizing_at", "completed_at"]) expect(done[t]).toBeGreaterThan(0);

    const out = await content(key, done.output_file_id);
    expect(out.map((l) => l.custom_id)).toEqual(["a", "b"]);
    for (const l of out) {
      expect(l.error).toBeNull();
      expect(l.response.status_code).toBe(200);
      expect(l.response.request_id).toBe(`${b.id}_l${l.custom_id === "a" ? 1 : 3}`);
      expect(l.response.body.object).toBe("chat.completion");
    }
    const errs = await content(key, done.error_file_id);
    expect(errs.map((l) => [l.custom_id, l.response.status_code, l.response.body.error.code])).toEqual([
      [null, 400, "invalid_json_line"],
      ["c", 404, "model_not_found"],
    ]);

    // Priority "batch" on the wire, and the ledger: one row per run line, each naming the batch (the unknown
    // model was refused before admission, which writes no row, as for an interactive request).
    const gens = backend.seen.filter((s) => s.path === "/v1/generate").map((s) => s.body as GenerateRequest);
    expect(gens.map((g) => g.priority)).toEqual(["batch", "batch"]);
    const rows = await ledgerRows(b.id);
    expect(rows.map((r) => r.request_id).sort()).toEqual([`${b.id}_l1`, `${b.id}_l3`]);

    // Half price: the same greedy request, interactive, costs exactly twice (every configured price is even).
    const interactive = await chat(key, { messages: [{ role: "user", content: "Hi" }], max_tokens: 4, temperature: 0 });
    const ij = await interactive.json();
    const ir = await usageRecord(interactive.res.headers.get("x-request-id")!);
    const line1 = rows.find((r) => r.request_id === `${b.id}_l1`)!;
    expect(line1.prompt_tokens).toBe(ir!.prompt_tokens);
    expect(line1.completion_tokens).toBe(ir!.completion_tokens);
    expect(BigInt(line1.cost_units) * 2n).toBe(BigInt(ir!.cost_units));
    expect(BigInt(line1.cost_units)).toBe(
      BigInt(line1.prompt_tokens) * BigInt(PRICE.input / 2) +
        BigInt(line1.completion_tokens) * BigInt(PRICE.output / 2),
    );
    expect(out[0].response.body.usage.cost_micros).toBe(Math.ceil(Number(line1.cost_units) / 1e6));
    expect(ij.usage.cost_micros).toBeGreaterThanOrEqual(out[0].response.body.usage.cost_micros);

    // /v1/usage splits batch from interactive spend.
    const usage = (await (await get(key, "/usage")).json()) as { data: Json[] };
    const tiny = usage.data.find((r) => r.tier === "mistral-tiny")!;
    expect(tiny.requests).toBe(3);
    expect(tiny.batch_requests).toBe(2);
    expect(tiny.batch_cost_micros).toBeGreaterThan(0);
    expect(tiny.batch_cost_micros).toBeLessThan(tiny.cost_micros);
  });

  it("embeddings lines produce embedding bodies", async () => {
    const { key } = await newKey();
    const driver = new QueueDriver();
    const line = (id: string, input: unknown) =>
      JSON.stringify({ custom_id: id, method: "POST", url: "/v1/embeddings", body: { model: "mistral-embed", input } });
    const b = await createBatch(driver, key, [line("e1", "hello"), line("e2", ["a", "b"])], "/v1/embeddings");
    await driver.drain();
    const done = await retrieve(key, b.id);
    expect(done).toMatchObject({ status: "completed", request_counts: { total: 2, completed: 2, failed: 0 } });
    const out = await content(key, done.output_file_id);
    expect(out.map((l) => [l.custom_id, l.response.body.object, l.response.body.data.length])).toEqual([
      ["e1", "list", 1],
      ["e2", "list", 2],
    ]);
    expect(done.error_file_id).toBeNull();
    expect((await ledgerRows(b.id)).map((r) => r.status)).toEqual(["ok", "ok"]);
  });

  it("a file with no valid line fails the batch with errors", async () => {
    const { key } = await newKey();
    const driver = new QueueDriver();
    const b = await createBatch(driver, key, ["{", chatLine("x", { stream: true })]);
    await driver.drain();
    const done = await retrieve(key, b.id);
    expect(done.status).toBe("failed");
    expect(done.failed_at).toBeGreaterThan(0);
    expect(done.errors.data.map((e: Json) => [e.line, e.code])).toEqual([
      [1, "invalid_json_line"],
      [2, "invalid_request"],
    ]);
  });

  it("cancel stops new lines at once and cancels the running one, billed what it generated", async () => {
    const { key } = await newKey();
    const driver = new QueueDriver();
    const g = gate(2);
    backend.set("r1.test", { kind: "ok", text: "a long answer", chunk: 1, gate: g });
    backend.set("r2.test", { kind: "ok", text: "a long answer", chunk: 1, gate: g });
    backend.set("r3.test", { kind: "ok", text: "a long answer", chunk: 1, gate: g });
    const b = await createBatch(driver, key, [chatLine("a", { max_tokens: 20 }), chatLine("b"), chatLine("c")]);
    await driver.step(1); // validation
    const running = driver.step(1); // line a, held after 2 tokens
    const cancelled = backend.nextCancel();
    const c = (await (await post(driver, key, `/batches/${b.id}/cancel`, {})).json()) as Json;
    expect(c.status).toBe("cancelling");
    expect(c.cancelling_at).toBeGreaterThan(0);
    await cancelled; // the consumer saw the status and cancelled the replica
    g.release();
    await running;
    await driver.drain();
    const done = await retrieve(key, b.id);
    expect(done.status).toBe("cancelled");
    expect(done.request_counts).toEqual({ total: 3, completed: 0, failed: 3 });
    const errs = await content(key, done.error_file_id);
    expect(errs.map((l) => [l.custom_id, l.error.code])).toEqual([
      ["a", "batch_cancelled"],
      ["b", "batch_cancelled"],
      ["c", "batch_cancelled"],
    ]);
    // Only line a ran: billed exactly what the replica generated (the backend's truth), status cancelled.
    const rows = await ledgerRows(b.id);
    expect(rows).toHaveLength(1);
    const truth = backend.finished.get(`${b.id}_l1`)!;
    expect(rows[0]).toMatchObject({ status: "cancelled", completion_tokens: truth.completion });
    expect(truth.completion).toBeGreaterThanOrEqual(2);
  });

  it("lines reached after the completion window end the batch expired, finished lines delivered", async () => {
    const { key } = await newKey();
    const driver = new QueueDriver();
    const b = await createBatch(driver, key, [chatLine("a"), chatLine("b")]);
    await driver.step(1); // validation
    await driver.step(1); // line a runs
    await env.DB.prepare("UPDATE batches SET expires_at = ? WHERE id = ?")
      .bind(Date.now() - 1, b.id)
      .run();
    await driver.drain();
    const done = await retrieve(key, b.id);
    expect(done.status).toBe("expired");
    expect(done.expired_at).toBeGreaterThan(0);
    expect(done.request_counts).toEqual({ total: 2, completed: 1, failed: 1 });
    expect((await content(key, done.output_file_id)).map((l) => l.custom_id)).toEqual(["a"]);
    expect((await content(key, done.error_file_id)).map((l) => [l.custom_id, l.error.code])).toEqual([
      ["b", "batch_expired"],
    ]);
  });

  it("a redelivered line is recorded and billed once; a line whose first attempt died mid-run reruns on its admission", async () => {
    const { key } = await newKey();
    const driver = new QueueDriver();
    const b = await createBatch(driver, key, [chatLine("a"), chatLine("b")]);
    await driver.step(1);
    const [ma, mb] = driver.pending.map((p) => p.body);
    // Line a is delivered twice (at least once delivery); line b's first attempt was admitted, then its
    // consumer died: simulated by admitting its ledger id in the KeyLimiter by hand before it runs.
    driver.pending.push({ body: ma });
    const { admit } = await import("../../worker/billing/meter");
    const { accountById } = await import("../../worker/billing/keys");
    const account = (await accountById(
      env.DB,
      (await env.DB.prepare("SELECT key_id FROM batches WHERE id = ?").bind(b.id).first<{ key_id: string }>())!.key_id,
    ))!;
    await admit(driver.env, account, {
      requestId: `${b.id}_l2`,
      model: "mistral-tiny",
      pricing: { input: 70000, cached_input: 7000, output: 210000 },
      promptTokens: 10,
      maxCompletionTokens: 4,
    });
    expect(mb).toBeDefined();
    await driver.drain();
    const done = await retrieve(key, b.id);
    expect(done).toMatchObject({ status: "completed", request_counts: { total: 2, completed: 2, failed: 0 } });
    expect((await content(key, done.output_file_id)).map((l) => l.custom_id)).toEqual(["a", "b"]);
    const rows = await ledgerRows(b.id);
    expect(rows.map((r) => [r.request_id, r.status])).toEqual([
      [`${b.id}_l1`, "ok"],
      [`${b.id}_l2`, "ok"],
    ]);
    expect(rows[0].cost_units).toBe(rows[1].cost_units);
  });

  it("another key gets 404 on the batch, its cancel, and its files; batches.list pages", async () => {
    const { key } = await newKey();
    const other = (await newKey()).key;
    const driver = new QueueDriver();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await createBatch(driver, key, [chatLine(`x${i}`)])).id);
    await driver.drain();
    const done = await retrieve(key, ids[0]);
    for (const path of [`/batches/${ids[0]}`, `/files/${done.output_file_id}`, `/files/${done.input_file_id}/content`])
      expect((await get(other, path)).status, path).toBe(404);
    expect((await post(driver, other, `/batches/${ids[0]}/cancel`, {})).status).toBe(404);
    expect(((await (await get(other, "/batches")).json()) as Json).data).toEqual([]);
    const seen: string[] = [];
    let after = "";
    for (;;) {
      const page = (await (await get(key, `/batches?limit=2${after ? `&after=${after}` : ""}`)).json()) as Json;
      seen.push(...page.data.map((d: Json) => d.id));
      if (!page.has_more) break;
      after = page.last_id;
    }
    expect(seen).toEqual([...ids].reverse());
  });

  it("refuses bad create requests with clear 400s and an unknown or foreign file with 404", async () => {
    const { key } = await newKey();
    const other = (await newKey()).key;
    const driver = new QueueDriver();
    const file = (await (await upload(key, chatLine("a"))).json()) as Json;
    const base = { input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" };
    for (const bad of [
      { ...base, endpoint: "/v1/completions" },
      { ...base, completion_window: "1h" },
      { ...base, metadata: { k: 1 } },
    ])
      expect((await post(driver, key, "/batches", bad)).status).toBe(400);
    expect((await post(driver, other, "/batches", base)).status).toBe(404);
    expect((await post(driver, key, "/batches", { ...base, input_file_id: "file-nope" })).status).toBe(404);
  });

  it("a line refused for a rate limit, then run, is billed under its one ledger id (the rejected row gives way)", async () => {
    const { id: keyId } = await newKey();
    const { accountById } = await import("../../worker/billing/keys");
    const { recordRejected, settle } = await import("../../worker/billing/meter");
    const account = (await accountById(env.DB, keyId))!;
    const requestId = `batch_${crypto.randomUUID().replaceAll("-", "")}_l1`;
    const batchId = requestId.replace(/_l1$/, "");
    await recordRejected(env, account, { requestId, model: "mistral-tiny", batchId });
    const pricing = { input: 70000, cached_input: 7000, output: 210000 };
    const t = Date.now();
    const run = { requestId, model: "mistral-tiny", pricing, promptTokens: 10, cachedTokens: 0, completionTokens: 5 };
    await settle(env, account, { ...run, status: "ok", startedAt: t, endedAt: t, batchId });
    await settle(env, account, { ...run, status: "ok", startedAt: t, endedAt: t, batchId });
    const rows = (await env.DB.prepare("SELECT * FROM usage_records WHERE request_id = ?").bind(requestId).all<Json>())
      .results;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      status: "ok",
      batch_id: batchId,
      completion_tokens: 5,
      cost_units: 10 * 70000 + 5 * 210000,
    });
  });
});
