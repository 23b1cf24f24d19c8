/**
 * The Batch API through the real local stack (the worker in workerd with miniflare's R2, Queues, D1 and
 * Durable Objects, in front of a real backend process) with the unmodified `openai` SDK: upload, create,
 * poll, download; the error file; exact request_counts; half price; another key's 404s; cancel; paging.
 * And Mistral's shape (/v1/batch/jobs) over the same batches, with the unmodified `@mistralai/mistralai` SDK.
 */
import { Mistral } from "@mistralai/mistralai";
import OpenAI, { NotFoundError, toFile } from "openai";
import { describe, expect, it } from "vitest";
import * as stack from "./helpers/edge-stack";

stack.useEdgeStack();
const d = stack.haveModels ? describe : describe.skip;

type Json = Record<string, any>;
const client = (key: string) => new OpenAI({ baseURL: `${stack.base}/v1`, apiKey: key, maxRetries: 0 });

const chatLine = (id: string, content: string, extra: Json = {}, model = "mistral-tiny") =>
  JSON.stringify({
    custom_id: id,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model, messages: [{ role: "user", content }], max_tokens: 8, temperature: 0, ...extra },
  });

async function submit(openai: OpenAI, lines: string[], endpoint: "/v1/chat/completions" | "/v1/embeddings") {
  const file = await openai.files.create({
    file: await toFile(Buffer.from(`${lines.join("\n")}\n`), "input.jsonl"),
    purpose: "batch",
  });
  return openai.batches.create({ input_file_id: file.id, endpoint, completion_window: "24h", metadata: { t: "e2e" } });
}

const FINAL = ["completed", "failed", "expired", "cancelled"];
const finished = (openai: OpenAI, id: string) =>
  stack.until(
    () => openai.batches.retrieve(id),
    (b) => FINAL.includes(b.status),
  );
const lines = async (openai: OpenAI, fileId: string | null | undefined): Promise<Json[]> =>
  fileId
    ? (await (await openai.files.content(fileId)).text())
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Json)
    : [];

d("Batch API (openai SDK, real stack)", () => {
  it("chat: output for good lines, the error file for a malformed line and an unknown model, exact counts, half price", async () => {
    const owner = await stack.newKeyRow("batch-chat");
    const openai = client(owner.key);
    const batch = await submit(
      openai,
      [
        chatLine("greet", "Say hello to the batch."),
        "{ not json",
        chatLine("nope", "Unknown model line.", {}, "mistral-imaginary"),
        chatLine("count", "Count to three.", { max_tokens: 6 }),
      ],
      "/v1/chat/completions",
    );
    expect(batch).toMatchObject({ object: "batch", status: "validating", metadata: { t: "e2e" } });
    const done = await finished(openai, batch.id);
    expect(done.status).toBe("completed");
    expect(done.request_counts).toEqual({ total: 4, completed: 2, failed: 2 });
    expect(done.completed_at).toBeGreaterThanOrEqual(done.created_at);

    const out = await lines(openai, done.output_file_id);
    expect(out.map((l) => l.custom_id)).toEqual(["greet", "count"]);
    for (const l of out) {
      expect(l.error).toBeNull();
      expect(l.response.status_code).toBe(200);
      expect(l.response.body.object).toBe("chat.completion");
      expect(l.response.body.usage.completion_tokens).toBeGreaterThan(0);
    }
    const errs = await lines(openai, done.error_file_id);
    expect(errs.map((l) => [l.custom_id, l.response.status_code, l.response.body.error.code])).toEqual([
      [null, 400, "invalid_json_line"],
      ["nope", 404, "model_not_found"],
    ]);

    // The identical request, interactive, from a fresh key (its own prefix-cache salt, so no cached tokens).
    const other = await stack.newKeyRow("batch-chat-interactive");
    const interactive = await client(other.key).chat.completions.create({
      model: "mistral-tiny",
      messages: [{ role: "user", content: "Say hello to the batch." }],
      max_tokens: 8,
      temperature: 0,
    });
    expect(interactive.choices[0]!.message.content).toBe(out[0]!.response.body.choices[0].message.content);
    const [irow] = await stack.requestRecords(other.id);
    const brow = (await stack.requestRecords(owner.id)).find((r) => r.request_id === out[0]!.response.request_id)!;
    expect(brow).toMatchObject({
      status: "ok",
      prompt_tokens: irow!.prompt_tokens,
      completion_tokens: irow!.completion_tokens,
    });
    expect(brow.cached_tokens).toBe(0);
    expect(BigInt(brow.cost_units) * 2n).toBe(BigInt(irow!.cost_units));
    // Each billed line once, and matching the backend's own count of what it generated.
    for (const l of out) {
      const audit = await stack.backendFinished((a) => a.request_id === l.response.request_id);
      expect(audit.completion_tokens).toBe(l.response.body.usage.completion_tokens);
    }
    const usage = await stack.usage(owner.key);
    const tiny = usage.find((r) => r.tier === "mistral-tiny")!;
    expect(tiny).toMatchObject({ requests: 2, batch_requests: 2 });
    expect(tiny.batch_cost_micros).toBe(tiny.cost_micros);
  });

  it("embeddings", async () => {
    const { key } = await stack.newKeyRow("batch-embed");
    const openai = client(key);
    const line = (id: string, input: unknown) =>
      JSON.stringify({ custom_id: id, method: "POST", url: "/v1/embeddings", body: { model: "mistral-embed", input } });
    const batch = await submit(openai, [line("one", "hello world"), line("two", ["a", "b"])], "/v1/embeddings");
    const done = await finished(openai, batch.id);
    expect(done).toMatchObject({ status: "completed", request_counts: { total: 2, completed: 2, failed: 0 } });
    const out = await lines(openai, done.output_file_id);
    expect(out.map((l) => [l.custom_id, l.response.body.data.length])).toEqual([
      ["one", 1],
      ["two", 2],
    ]);
    expect(out[0]!.response.body.data[0].embedding.length).toBeGreaterThan(0);
  });

  it("another key gets 404 on the batch and its files; batches.list pages", async () => {
    const { key } = await stack.newKeyRow("batch-owner");
    const openai = client(key);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push((await submit(openai, [chatLine(`p${i}`, `Page ${i}.`, { max_tokens: 2 })], "/v1/chat/completions")).id);
    const done = await finished(openai, ids[0]!);
    const stranger = client((await stack.newKeyRow("batch-stranger")).key);
    await expect(stranger.batches.retrieve(ids[0]!)).rejects.toBeInstanceOf(NotFoundError);
    await expect(stranger.batches.cancel(ids[0]!)).rejects.toBeInstanceOf(NotFoundError);
    await expect(stranger.files.retrieve(done.input_file_id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(stranger.files.content(done.output_file_id!)).rejects.toBeInstanceOf(NotFoundError);
    await expect(stranger.files.delete(done.input_file_id)).rejects.toBeInstanceOf(NotFoundError);

    const seen: string[] = [];
    for await (const b of openai.batches.list({ limit: 1 })) seen.push(b.id);
    expect(seen).toEqual([...ids].reverse());
    for (const id of ids) await finished(openai, id);
  });

  it("cancel ends cancelled; every run line is billed exactly what the backend generated, the rest not at all", async () => {
    const owner = await stack.newKeyRow("batch-cancel");
    const openai = client(owner.key);
    const many = Array.from({ length: 24 }, (_, i) =>
      chatLine(`c${i}`, `Write a long story number ${i}.`, { max_tokens: 200 }),
    );
    const batch = await submit(openai, many, "/v1/chat/completions");
    await stack.until(
      () => openai.batches.retrieve(batch.id),
      (b) => b.status === "in_progress",
    );
    // Cancel once the first line has started generating on the backend.
    await stack.until(
      async () =>
        (await stack.requestRecords(owner.id)).length +
        stack.generated.filter((g) => String(g.request_id).startsWith(batch.id)).length,
      (n) => n > 0,
    );
    const c = await openai.batches.cancel(batch.id);
    expect(["cancelling", "cancelled"]).toContain(c.status);
    const done = await finished(openai, batch.id);
    expect(done.status).toBe("cancelled");
    expect(done.cancelled_at).toBeGreaterThan(0);
    const out = await lines(openai, done.output_file_id);
    const errs = await lines(openai, done.error_file_id);
    expect(done.request_counts).toEqual({ total: 24, completed: out.length, failed: errs.length });
    expect(out.length + errs.length).toBe(24);
    expect(errs.length).toBeGreaterThan(0);
    for (const e of errs) expect(e.error.code).toBe("batch_cancelled");
    // The ledger: one row per line that reached the backend, each equal to the backend's own count.
    const rows = (await stack.requestRecords(owner.id)).filter((r) => String(r.request_id).startsWith(batch.id));
    expect(new Set(rows.map((r) => r.request_id)).size).toBe(rows.length);
    for (const r of rows) {
      const audit = await stack.backendFinished((a) => a.request_id === r.request_id);
      expect(r.completion_tokens, r.request_id).toBe(audit.completion_tokens);
      expect(["ok", "cancelled"]).toContain(r.status);
    }
    expect(rows.length).toBeLessThan(24);
  });

  it("Mistral's shape (@mistralai/mistralai SDK): files.upload, batch.jobs.create/get/list/cancel, files.download", async () => {
    const owner = await stack.newKeyRow("batch-mistral");
    const mistral = new Mistral({ apiKey: owner.key, serverURL: stack.base });
    const mline = (id: string, content: string) =>
      JSON.stringify({ custom_id: id, body: { messages: [{ role: "user", content }], max_tokens: 6, temperature: 0 } });
    const up = await mistral.files.upload({
      file: {
        fileName: "jobs.jsonl",
        content: Buffer.from(`${[mline("m1", "Hello."), mline("m2", "Bye.")].join("\n")}\n`),
      },
      purpose: "batch",
    });
    expect(up).toMatchObject({ purpose: "batch", sampleType: "batch_request", numLines: 2 });
    const created = await mistral.batch.jobs.create({
      inputFiles: [up.id],
      endpoint: "/v1/chat/completions",
      model: "mistral-tiny",
      metadata: { t: "mistral" },
    });
    expect(created).toMatchObject({ status: "QUEUED", model: "mistral-tiny", inputFiles: [up.id] });
    const done = await stack.until(
      () => mistral.batch.jobs.get({ jobId: created.id }),
      (j) => !["QUEUED", "RUNNING", "CANCELLATION_REQUESTED"].includes(j.status),
    );
    expect(done).toMatchObject({ status: "SUCCESS", totalRequests: 2, succeededRequests: 2, failedRequests: 0 });
    const stream = await mistral.files.download({ fileId: done.outputFile! });
    const out = (await new Response(stream).text())
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Json);
    expect(out.map((l) => [l.custom_id, l.response.status_code, l.response.body.model])).toEqual([
      ["m1", 200, "mistral-tiny"],
      ["m2", 200, "mistral-tiny"],
    ]);
    // The same batch in OpenAI's shape, billed at the batch price like any line.
    const asBatch = await client(owner.key).batches.retrieve(created.id);
    expect(asBatch).toMatchObject({ status: "completed", request_counts: { total: 2, completed: 2, failed: 0 } });
    expect(
      (await stack.requestRecords(owner.id)).filter((r) => String(r.request_id).startsWith(created.id)),
    ).toHaveLength(2);

    // Cancel (a job of inline requests), the list with its total, and another key's 404.
    const inline = await mistral.batch.jobs.create({
      requests: Array.from({ length: 12 }, (_, i) => ({
        customId: `r${i}`,
        body: { messages: [{ role: "user", content: `Story ${i}.` }], max_tokens: 200 },
      })),
      endpoint: "/v1/chat/completions",
      model: "mistral-tiny",
    });
    const cancelling = await mistral.batch.jobs.cancel({ jobId: inline.id });
    expect(["CANCELLATION_REQUESTED", "CANCELLED"]).toContain(cancelling.status);
    const ended = await stack.until(
      () => mistral.batch.jobs.get({ jobId: inline.id }),
      (j) => j.status === "CANCELLED",
    );
    expect(ended.totalRequests).toBe(12);
    expect(ended.completedRequests).toBe(12);
    const list = await mistral.batch.jobs.list({ pageSize: 1 });
    expect(list.total).toBe(2);
    expect(list.data?.map((j) => j.id)).toEqual([inline.id]);
    const stranger = new Mistral({
      apiKey: (await stack.newKeyRow("batch-mistral-stranger")).key,
      serverURL: stack.base,
    });
    await expect(stranger.batch.jobs.get({ jobId: created.id })).rejects.toMatchObject({ statusCode: 404 });
    expect((await stranger.batch.jobs.list()).total).toBe(0);
  });
});
