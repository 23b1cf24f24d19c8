/**
 * Mistral's shape of the Batch API (/v1/batch/jobs) inside the Workers runtime: the same batches, lines
 * of `{custom_id, body}` with the model at the job level, inline requests, paging by page/page_size with a
 * total, cancel, another key's 404, and the 400s. The unmodified Mistral SDK drives it in
 * test/node/e2e-batch.test.ts.
 */
import { SELF } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { validateInput } from "../../worker/batch/input";
import { FakeBackend } from "./chat-fake-backend";
import { newKey } from "./chat-harness";
import { QueueDriver, auth, getWith, post, upload, url } from "./batch-harness";

let backend: FakeBackend;
beforeEach(() => {
  backend = new FakeBackend();
  backend.install();
});

type Json = Record<string, any>;
const line = (id: string, body: Json = {}) =>
  JSON.stringify({ custom_id: id, body: { messages: [{ role: "user", content: "Hi" }], max_tokens: 4, ...body } });
const jsonl = (text: string) =>
  text
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Json);

async function job(driver: QueueDriver, key: string, body: Json) {
  const res = await post(driver, key, "/batch/jobs", body);
  return { status: res.status, body: (await res.json()) as Json };
}
const get = async (driver: QueueDriver, key: string, path: string) =>
  (await (await getWith(driver, key, path)).json()) as Json;

describe("batch jobs (Mistral's shape)", () => {
  it("runs {custom_id, body} lines with the job's model; the job and its files read in Mistral's shape", async () => {
    const { key } = await newKey();
    const driver = new QueueDriver();
    const file = (await (
      await upload(key, `${[line("a"), '{"custom_id": "b"}', line("c")].join("\n")}\n`)
    ).json()) as Json;
    expect(file).toMatchObject({ sample_type: "batch_request", source: "upload", num_lines: 3, deleted: false });
    const created = await job(driver, key, {
      input_files: [file.id],
      endpoint: "/v1/chat/completions",
      model: "mistral-tiny",
      metadata: { run: "m" },
      timeout_hours: 2,
    });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({
      object: "batch",
      status: "QUEUED",
      input_files: [file.id],
      model: "mistral-tiny",
      endpoint: "/v1/chat/completions",
      errors: [],
      total_requests: 0,
      metadata: { run: "m" },
    });
    await driver.drain();
    const done = await get(driver, key, `/batch/jobs/${created.body.id}`);
    expect(done).toMatchObject({
      status: "SUCCESS",
      total_requests: 3,
      completed_requests: 3,
      succeeded_requests: 2,
      failed_requests: 1,
    });
    expect(done.completed_at).toBeGreaterThanOrEqual(done.started_at);
    // The same batch in OpenAI's shape: its window is the job's 2 hours.
    const batch = await get(driver, key, `/batches/${done.id}`);
    expect(batch).toMatchObject({ status: "completed", completion_window: "2h" });
    expect(batch.expires_at - batch.created_at).toBe(7200);

    const out = jsonl(await (await getWith(driver, key, `/files/${done.output_file}/content`)).text());
    expect(out.map((l) => [l.custom_id, l.response.body.model])).toEqual([
      ["a", "mistral-tiny"],
      ["c", "mistral-tiny"],
    ]);
    const errs = jsonl(await (await getWith(driver, key, `/files/${done.error_file}/content`)).text());
    expect(errs.map((l) => [l.custom_id, l.response.body.error.param])).toEqual([["b", "body"]]);
    // The bytes as octet-stream for a client that accepts only that (Mistral's SDK checks the type).
    const raw = await SELF.fetch(url(`/files/${done.output_file}/content`), {
      headers: { ...auth(key), accept: "application/octet-stream" },
    });
    expect(raw.headers.get("content-type")).toBe("application/octet-stream");
    expect(jsonl(await raw.text())).toHaveLength(2);
    expect(await get(driver, key, `/files/${done.error_file}`)).toMatchObject({
      sample_type: "batch_error",
      source: "mistral",
      num_lines: 1,
    });
  });

  it("inline requests become the input file (custom_id defaults to the index); a model per line works without a job model", async () => {
    const { key } = await newKey();
    const driver = new QueueDriver();
    const created = await job(driver, key, {
      requests: [
        { body: { model: "mistral-tiny", messages: [{ role: "user", content: "x" }], max_tokens: 2 } },
        {
          custom_id: "named",
          body: { model: "mistral-tiny", messages: [{ role: "user", content: "y" }], max_tokens: 2 },
        },
      ],
      endpoint: "/v1/chat/completions",
    });
    expect(created.status).toBe(200);
    expect(created.body.model).toBeNull();
    await driver.drain();
    const done = await get(driver, key, `/batch/jobs/${created.body.id}`);
    expect(done).toMatchObject({ status: "SUCCESS", succeeded_requests: 2 });
    const out = jsonl(await (await getWith(driver, key, `/files/${done.output_file}/content`)).text());
    expect(out.map((l) => l.custom_id)).toEqual(["0", "named"]);
  });

  it("lists a page at a time with the total, filters by status, cancels; another key gets 404", async () => {
    const { key } = await newKey();
    const other = (await newKey()).key;
    const driver = new QueueDriver();
    const file = (await (await upload(key, `${line("a")}\n`)).json()) as Json;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push(
        (await job(driver, key, { input_files: [file.id], endpoint: "/v1/chat/completions", model: "mistral-tiny" }))
          .body.id,
      );
    const cancelled = await post(driver, key, `/batch/jobs/${ids[0]}/cancel`, {});
    expect(((await cancelled.json()) as Json).status).toBe("CANCELLATION_REQUESTED");
    await driver.drain();

    const p0 = await get(driver, key, "/batch/jobs?page=0&page_size=2");
    const p1 = await get(driver, key, "/batch/jobs?page=1&page_size=2");
    expect(p0.total).toBe(3);
    expect([...p0.data, ...p1.data].map((j: Json) => j.id)).toEqual([...ids].reverse());
    const oldest = await get(driver, key, "/batch/jobs?order_by=created&page_size=1");
    expect(oldest.data.map((j: Json) => j.id)).toEqual([ids[0]]);
    const done = await get(driver, key, "/batch/jobs?status=CANCELLED&status=FAILED");
    expect(done).toMatchObject({ total: 1, data: [{ id: ids[0], status: "CANCELLED" }] });
    expect((await get(driver, key, "/batch/jobs?model=mistral-tiny")).total).toBe(3);

    expect((await getWith(driver, other, `/batch/jobs/${ids[1]}`)).status).toBe(404);
    expect((await post(driver, other, `/batch/jobs/${ids[1]}/cancel`, {})).status).toBe(404);
    expect((await get(driver, other, "/batch/jobs")).total).toBe(0);
    expect((await getWith(driver, key, "/batch/jobs?page_size=500")).status).toBe(400);
    expect((await getWith(driver, key, "/batch/jobs?status=DONE")).status).toBe(400);
  });

  it("refuses what it does not offer with clear 400s, and a foreign file with 404", async () => {
    const { key } = await newKey();
    const other = (await newKey()).key;
    const driver = new QueueDriver();
    const file = (await (await upload(key, `${line("a")}\n`)).json()) as Json;
    const base = { input_files: [file.id], endpoint: "/v1/chat/completions", model: "mistral-tiny" };
    const req = [{ body: { messages: [] } }];
    for (const [bad, param] of [
      [{ ...base, input_files: [file.id, file.id] }, "input_files"],
      [{ ...base, requests: req }, "input_files"],
      [{ endpoint: "/v1/chat/completions" }, "input_files"],
      [{ ...base, endpoint: "/v1/ocr" }, "endpoint"],
      [{ ...base, agent_id: "ag_1" }, "agent_id"],
      [{ ...base, timeout_hours: 48 }, "timeout_hours"],
    ] as const) {
      const r = await job(driver, key, bad);
      expect(r.status, JSON.stringify(bad)).toBe(400);
      expect(r.body.error).toMatchObject({ type: "invalid_request_error", param });
    }
    expect((await job(driver, other, base)).status).toBe(404);
  });
});

describe("Mistral input lines", () => {
  it("are {custom_id, body}: the job's model is set on every line, and method/url come from the job", () => {
    const text = [line("a"), line("b", { model: "other" }), JSON.stringify({ custom_id: "c" }), line("a")].join("\n");
    const { valid, bad } = validateInput(text, "/v1/chat/completions", { format: "mistral", model: "mistral-tiny" });
    expect(valid.map((l) => [l.customId, l.body.model])).toEqual([
      ["a", "mistral-tiny"],
      ["b", "mistral-tiny"],
    ]);
    expect(bad.map((l) => [l.line, l.error.code])).toEqual([
      [3, "invalid_line"],
      [4, "duplicate_custom_id"],
    ]);
    expect(bad[0]!.error.message).toContain("custom_id and body");
  });
});
