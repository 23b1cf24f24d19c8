/**
 * The Batch API in OpenAI's shape (worker/batch/ runs it):
 *   POST /v1/batches, GET /v1/batches/{id}, GET /v1/batches (after, limit), POST /v1/batches/{id}/cancel.
 * A batch, like its files, is visible only to the key that made it (any other key: 404).
 */
import { z } from "zod";
import type { Batch as BatchSchema, FileObject as FileObjectSchema, Fits } from "../api/schemas";
import type { FileObject as FileObjectType } from "../batch/files";
import type { BatchObject } from "../batch/object";
import { readBody } from "../api/body";
import { badRequest, notFound } from "../errors";
import { factory } from "../factory";
import { getFile } from "../batch/files";
import { validateMessage } from "../batch/messages";
import { batchObject } from "../batch/object";
import { listQuery } from "../batch/paging";
import { reviveIfStale } from "../batch/revive";
import {
  BATCH_ENDPOINTS,
  type BatchRow,
  countsOf,
  insertBatch,
  listBatches,
  newBatchId,
  ownBatch,
  transition,
} from "../batch/store";

export const batchesRoutes = factory.createApp();

export const CreateBatchSchema = z.object({
  input_file_id: z.string().min(1).max(128),
  endpoint: z.enum(BATCH_ENDPOINTS as ["/v1/chat/completions", "/v1/embeddings"]),
  completion_window: z.literal("24h"),
  // OpenAI's limits: 16 pairs, keys up to 64 and values up to 512 characters.
  metadata: z
    .record(z.string().max(64), z.string().max(512))
    .refine((m) => Object.keys(m).length <= 16, "at most 16 keys")
    .nullish(),
});

const batchNotFound = (id: string) => notFound(`No such batch: '${id}'.`, "batch_not_found");

async function render(db: D1Database, rows: BatchRow[]) {
  const counts = await countsOf(db, rows);
  return rows.map((r) => batchObject(r, counts.get(r.id)!));
}

batchesRoutes.post("/batches", async (c) => {
  const b = await readBody(c.req.raw, CreateBatchSchema);
  const keyId = c.get("account").keyId;
  const file = await getFile(c.env.DB, keyId, b.input_file_id);
  if (file.purpose !== "batch")
    throw badRequest(`File '${file.id}' is not a batch input file (purpose "batch").`, "input_file_id", "invalid_file");
  const row = await insertBatch(c.env.DB, {
    id: newBatchId(),
    key_id: keyId,
    endpoint: b.endpoint,
    input_file_id: file.id,
    completion_window: b.completion_window,
    metadata: b.metadata ? JSON.stringify(b.metadata) : null,
  });
  try {
    await c.env.BATCH_QUEUE.send(validateMessage(row.id));
  } catch (err) {
    const errors = {
      object: "list",
      data: [
        { code: "queue_unavailable", message: "Could not queue the batch; create it again.", param: null, line: null },
      ],
    };
    await transition(c.env.DB, row.id, ["validating"], "failed", { errors: JSON.stringify(errors) });
    throw err;
  }
  return c.json((await render(c.env.DB, [row]))[0]);
});

batchesRoutes.get("/batches", async (c) => {
  const { after, limit } = listQuery(c.req.query(), 100);
  const page = await listBatches(c.env.DB, c.get("account").keyId, { after, limit });
  const data = await render(c.env.DB, page.data);
  return c.json({
    object: "list" as const,
    data,
    first_id: data[0]?.id ?? null,
    last_id: data.at(-1)?.id ?? null,
    has_more: page.hasMore,
  });
});

/** Polling an open batch that went silent re-queues its remaining lines (batch/revive.ts). */
batchesRoutes.get("/batches/:id", async (c) => {
  const id = c.req.param("id");
  const row = await ownBatch(c.env.DB, c.get("account").keyId, id);
  if (!row) throw batchNotFound(id);
  await reviveIfStale(c.env, row);
  return c.json((await render(c.env.DB, [row]))[0]);
});

/** Stops new lines at once; running ones are cancelled and billed what they generated (batch/consumer.ts). */
batchesRoutes.post("/batches/:id/cancel", async (c) => {
  const id = c.req.param("id");
  const keyId = c.get("account").keyId;
  if (!(await ownBatch(c.env.DB, keyId, id))) throw batchNotFound(id);
  await transition(c.env.DB, id, ["validating", "in_progress"], "cancelling");
  // A batch whose lines are all recorded ends now; otherwise its remaining messages end it.
  const row = (await ownBatch(c.env.DB, keyId, id))!;
  return c.json((await render(c.env.DB, [row]))[0]);
});

/** What the batch handlers build is what the OpenAPI document says (compile-time only; api/schemas.ts). */
export type BatchChecks = [
  Fits<FileObjectType, z.output<typeof FileObjectSchema>>,
  Fits<BatchObject, z.output<typeof BatchSchema>>,
];
