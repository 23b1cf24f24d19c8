/**
 * Ending a batch once every line is recorded: write the output and error files (input order) and move
 * the batch to its final status. Idempotent: the files' ids follow from the batch id and each status
 * move is conditional, so two consumers finishing the last lines at once end with one set of files.
 */
import type { Env } from "../env";
import { putFile } from "./files";
import { type BatchRow, type Outcome, anyExpired, getBatch, recordedCount, resultPage, transition } from "./store";

const OPEN: readonly BatchRow["status"][] = ["in_progress", "cancelling", "finalizing"];

/** Finalizes the batch when its last line is recorded; does nothing before. */
export async function maybeFinalize(env: Env, batchId: string): Promise<void> {
  const b = await getBatch(env.DB, batchId);
  if (!b || !OPEN.includes(b.status) || b.total === 0) return;
  if ((await recordedCount(env.DB, batchId)) < b.total) return;
  await finalize(env, b);
}

async function resultFile(env: Env, b: BatchRow, outcome: Outcome): Promise<string | null> {
  const parts: string[] = [];
  for (let after = 0; ; ) {
    const page = await resultPage(env.DB, b.id, outcome, after);
    if (page.length === 0) break;
    for (const r of page) parts.push(r.result);
    after = page[page.length - 1].line;
  }
  if (parts.length === 0) return null;
  const hex = b.id.replace(/^batch_/, "");
  const row = await putFile(env, {
    id: `file-${hex}-${outcome === "completed" ? "output" : "errors"}`,
    key_id: b.key_id,
    filename: `${b.id}_${outcome === "completed" ? "output" : "error"}.jsonl`,
    purpose: "batch_output",
    lines: parts.length,
    body: `${parts.join("\n")}\n`,
  });
  return row.id;
}

async function finalize(env: Env, b: BatchRow): Promise<void> {
  if (b.status === "in_progress") await transition(env.DB, b.id, ["in_progress"], "finalizing");
  const now = await getBatch(env.DB, b.id);
  if (!now || !OPEN.includes(now.status)) return;
  const output_file_id = await resultFile(env, now, "completed");
  const error_file_id = await resultFile(env, now, "failed");
  const final = now.status === "cancelling" ? "cancelled" : (await anyExpired(env.DB, b.id)) ? "expired" : "completed";
  await transition(env.DB, b.id, ["finalizing", "cancelling"], final, { output_file_id, error_file_id });
}
