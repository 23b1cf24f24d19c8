/**
 * The Batch API in OpenAI's shape (worker/batch/ runs it):
 *   POST /v1/batches, GET /v1/batches/{id}, GET /v1/batches (after, limit), POST /v1/batches/{id}/cancel.
 * A batch, like its files, is visible only to the key that made it (any other key: 404).
 */
import { z } from "zod";
import { BatchEndpoint, type BatchList } from "../../contract/api-batch";
import { readBody } from "../api/body";
import { factory } from "../factory";
import { batchNotFound, cancelBatch, startBatch } from "../batch/create";
import { batchObject } from "../batch/object";
import { listQuery } from "../batch/paging";
import { reviveIfStale } from "../batch/revive";
import { type BatchRow, countsOf, listBatches, ownBatch } from "../batch/store";

export const batchesRoutes = factory.createApp();

// OpenAI's limits: 16 pairs, keys up to 64 and values up to 512 characters (Mistral's jobs take the same).
export const MetadataSchema = z
  .record(z.string().max(64), z.string().max(512))
  .refine((m) => Object.keys(m).length <= 16, "at most 16 keys")
  .nullish();

export const CreateBatchSchema = z.object({
  input_file_id: z.string().min(1).max(128),
  endpoint: BatchEndpoint,
  completion_window: z.literal("24h"),
  metadata: MetadataSchema,
});

async function render(db: D1Database, rows: BatchRow[]) {
  const counts = await countsOf(db, rows);
  return rows.map((r) => batchObject(r, counts.get(r.id)!));
}

batchesRoutes.post("/batches", async (c) => {
  const b = await readBody(c.req.raw, CreateBatchSchema);
  const row = await startBatch(c.env, c.get("account").keyId, {
    endpoint: b.endpoint,
    input_file_id: b.input_file_id,
    completion_window: b.completion_window,
    metadata: b.metadata ? JSON.stringify(b.metadata) : null,
  });
  return c.json((await render(c.env.DB, [row]))[0]);
});

batchesRoutes.get("/batches", async (c) => {
  const { after, limit } = listQuery(c.req.query(), 100);
  const page = await listBatches(c.env.DB, c.get("account").keyId, { after, limit });
  const data = await render(c.env.DB, page.data);
  return c.json({
    object: "list",
    data,
    first_id: data[0]?.id ?? null,
    last_id: data.at(-1)?.id ?? null,
    has_more: page.hasMore,
  } satisfies BatchList);
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
  const row = await cancelBatch(c.env.DB, c.get("account").keyId, c.req.param("id"));
  return c.json((await render(c.env.DB, [row]))[0]);
});
