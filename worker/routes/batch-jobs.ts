/**
 * The Batch API in Mistral's shape, over the same batches as OpenAI's (routes/batches.ts):
 *   POST /v1/batch/jobs, GET /v1/batch/jobs (page, page_size, status, model, order_by),
 *   GET /v1/batch/jobs/{job_id}, POST /v1/batch/jobs/{job_id}/cancel.
 * A job is a batch seen in Mistral's shape (batch/job.ts): a batch made either way can be read, listed and
 * cancelled either way. What differs is only at creation: one input file of `{custom_id, body}` lines (or
 * the same lines inline in `requests`, stored as a file), the model at the job level, and `timeout_hours`.
 */
import { z } from "zod";
import { BatchEndpoint, type BatchJobList } from "../../contract/api-batch";
import { readBody } from "../api/body";
import { badRequest } from "../errors";
import { factory } from "../factory";
import { batchNotFound, cancelBatch, startBatch } from "../batch/create";
import { FILE_LIMITS, checkUpload, newFileId, putFile } from "../batch/files";
import { JOB_STATUSES, type JobObject, type JobStatus, batchStatusesOf, jobObject } from "../batch/job";
import { reviveIfStale } from "../batch/revive";
import { type BatchRow, countsOf, ownBatch, pageBatches } from "../batch/store";
import { MetadataSchema } from "./batches";

export const batchJobsRoutes = factory.createApp();

/** The window a job may ask for, in hours: up to the 24 h an OpenAI batch gets. */
export const MAX_TIMEOUT_HOURS = 24;

export const CreateBatchJobSchema = z.object({
  input_files: z.array(z.string().min(1).max(128)).max(1).nullish(),
  requests: z
    .array(z.object({ custom_id: z.string().min(1).max(512).nullish(), body: z.record(z.string(), z.unknown()) }))
    .min(1)
    .max(FILE_LIMITS.maxLines)
    .nullish(),
  endpoint: BatchEndpoint,
  model: z.string().min(1).max(256).nullish(),
  agent_id: z.null().optional().describe("Agents are not offered: leave it out."),
  metadata: MetadataSchema,
  timeout_hours: z.int().min(1).max(MAX_TIMEOUT_HOURS).default(24),
});

async function render(db: D1Database, rows: BatchRow[]): Promise<JobObject[]> {
  const counts = await countsOf(db, rows);
  return rows.map((r) => jobObject(r, counts.get(r.id)!));
}

/** Inline `requests` become the job's input file, one `{custom_id, body}` line each (custom_id: its index). */
async function inlineFile(
  env: { DB: D1Database; FILES: R2Bucket },
  keyId: string,
  requests: { custom_id?: string | null; body: Record<string, unknown> }[],
) {
  const text = `${requests.map((r, i) => JSON.stringify({ custom_id: r.custom_id ?? String(i), body: r.body })).join("\n")}\n`;
  const bytes = new TextEncoder().encode(text);
  const { lines } = checkUpload(bytes);
  return putFile(env, {
    id: newFileId(),
    key_id: keyId,
    filename: "requests.jsonl",
    purpose: "batch",
    lines,
    body: bytes,
  });
}

batchJobsRoutes.post("/batch/jobs", async (c) => {
  const b = await readBody(c.req.raw, CreateBatchJobSchema);
  const keyId = c.get("account").keyId;
  const files = b.input_files ?? [];
  if ((files.length === 1) === Boolean(b.requests))
    throw badRequest("Give exactly one of 'input_files' (one file id) and 'requests'.", "input_files");
  const input = b.requests ? (await inlineFile(c.env, keyId, b.requests)).id : files[0]!;
  const row = await startBatch(
    c.env,
    keyId,
    {
      endpoint: b.endpoint,
      input_file_id: input,
      completion_window: `${b.timeout_hours}h`,
      windowMs: b.timeout_hours * 3600_000,
      metadata: b.metadata ? JSON.stringify(b.metadata) : null,
      model: b.model ?? null,
      line_format: "mistral",
    },
    "input_files",
  );
  return c.json((await render(c.env.DB, [row]))[0]);
});

const ListQuery = z.object({
  page: z.coerce.number().int().min(0).default(0),
  page_size: z.coerce.number().int().min(1).max(100).default(100),
  status: z.array(z.enum(JOB_STATUSES)).optional(),
  model: z.string().min(1).max(256).optional(),
  order_by: z.enum(["created", "-created"]).default("-created"),
});

batchJobsRoutes.get("/batch/jobs", async (c) => {
  const statuses = c.req.queries("status");
  const q = ListQuery.safeParse({ ...c.req.query(), ...(statuses ? { status: statuses } : {}) });
  if (!q.success) {
    const field = String(q.error.issues[0]?.path[0] ?? "page");
    throw badRequest(
      `'${field}' is invalid: page >= 0, page_size 1 to 100, status one of ${JOB_STATUSES.join(", ")}, order_by created or -created.`,
      field,
    );
  }
  const { page, page_size, model, order_by } = q.data;
  const list = await pageBatches(c.env.DB, c.get("account").keyId, {
    offset: page * page_size,
    limit: page_size,
    newestFirst: order_by === "-created",
    ...(q.data.status?.length ? { statuses: q.data.status.flatMap((s: JobStatus) => batchStatusesOf(s)) } : {}),
    ...(model ? { model } : {}),
  });
  return c.json({ object: "list", data: await render(c.env.DB, list.data), total: list.total } satisfies BatchJobList);
});

/** Polling an open job that went silent re-queues its remaining lines (batch/revive.ts). */
batchJobsRoutes.get("/batch/jobs/:job_id", async (c) => {
  const id = c.req.param("job_id");
  const row = await ownBatch(c.env.DB, c.get("account").keyId, id);
  if (!row) throw batchNotFound(id);
  await reviveIfStale(c.env, row);
  return c.json((await render(c.env.DB, [row]))[0]);
});

batchJobsRoutes.post("/batch/jobs/:job_id/cancel", async (c) => {
  const row = await cancelBatch(c.env.DB, c.get("account").keyId, c.req.param("job_id"));
  return c.json((await render(c.env.DB, [row]))[0]);
});
