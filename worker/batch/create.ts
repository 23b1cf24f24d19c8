/**
 * Starting and cancelling a batch, shared by both shapes of the API (routes/batches.ts for OpenAI's,
 * routes/batch-jobs.ts for Mistral's): the row, then the validate message that sets it running.
 */
import type { Env } from "../env";
import { badRequest, notFound } from "../errors";
import { getFile } from "./files";
import { validateMessage } from "./messages";
import { type BatchRow, insertBatch, newBatchId, ownBatch, transition } from "./store";

export const batchNotFound = (id: string) => notFound(`No such batch: '${id}'.`, "batch_not_found");

/** Creates the key's batch over its input file (a `batch` file of this key, else 404/400) and queues it. */
export async function startBatch(
  env: Pick<Env, "DB" | "BATCH_QUEUE">,
  keyId: string,
  b: Omit<Parameters<typeof insertBatch>[1], "id" | "key_id">,
  param = "input_file_id",
): Promise<BatchRow> {
  const file = await getFile(env.DB, keyId, b.input_file_id);
  if (file.purpose !== "batch")
    throw badRequest(`File '${file.id}' is not a batch input file (purpose "batch").`, param, "invalid_file");
  const row = await insertBatch(env.DB, { ...b, id: newBatchId(), key_id: keyId, input_file_id: file.id });
  try {
    await env.BATCH_QUEUE.send(validateMessage(row.id));
  } catch (err) {
    const errors = {
      object: "list",
      data: [
        { code: "queue_unavailable", message: "Could not queue the batch; create it again.", param: null, line: null },
      ],
    };
    await transition(env.DB, row.id, ["validating"], "failed", { errors: JSON.stringify(errors) });
    throw err;
  }
  return row;
}

/** Stops new lines at once; running ones are cancelled and billed what they generated (consumer.ts). */
export async function cancelBatch(db: D1Database, keyId: string, id: string): Promise<BatchRow> {
  if (!(await ownBatch(db, keyId, id))) throw batchNotFound(id);
  await transition(db, id, ["validating", "in_progress"], "cancelling");
  // A batch whose lines are all recorded ends now; otherwise its remaining messages end it.
  return (await ownBatch(db, keyId, id))!;
}
