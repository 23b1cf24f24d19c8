/**
 * The batches and batch_lines tables (owned here). A batch's status only moves forward, each move one
 * conditional UPDATE (so two consumers finishing at once, or a cancel racing the last line, agree):
 *
 *   validating -> in_progress -> finalizing -> completed | expired
 *   validating -> failed                        (no valid line)
 *   validating | in_progress -> cancelling -> cancelled
 *
 * A finished line is one batch_lines row (INSERT OR IGNORE: a retried line is recorded once), and
 * request_counts are counted from those rows, so they are exact whatever was retried.
 */
import type { BatchEndpoint, BatchRequestCounts, BatchStatus } from "../../contract/api-batch";

/** OpenAI allows only this window; lines not run by then end the batch as `expired`. */
export const COMPLETION_WINDOW_MS = 24 * 3600_000;

export interface BatchRow {
  id: string;
  key_id: string;
  endpoint: BatchEndpoint;
  input_file_id: string;
  completion_window: string;
  status: BatchStatus;
  metadata: string | null;
  errors: string | null;
  total: number;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  expires_at: number;
  in_progress_at: number | null;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  /** When the batch last showed queue activity, or will (a line waiting out a rate limit); revive.ts. */
  active_at: number | null;
  /** The batch's message generation: each re-queue bumps it, and older messages are dropped. */
  gen: number;
  /** Mistral's job-level model, set on every line (null: each line names its own). */
  model: string | null;
  /** The shape of the input file's lines (input.ts). */
  line_format: LineFormat;
}

/** `openai`: `{custom_id, method, url, body}` lines; `mistral`: `{custom_id, body}` lines. */
export type LineFormat = "openai" | "mistral";

export const newBatchId = () => `batch_${crypto.randomUUID().replaceAll("-", "")}`;

/** The ledger id of a line: one per batch and line, the same for every retry (worker/batch/line-request.ts). */
export const lineRequestId = (batchId: string, line: number) => `${batchId}_l${line}`;

export async function insertBatch(
  db: D1Database,
  b: Pick<BatchRow, "id" | "key_id" | "endpoint" | "input_file_id" | "completion_window" | "metadata"> &
    Partial<Pick<BatchRow, "model" | "line_format">> & { windowMs?: number },
  now = Date.now(),
): Promise<BatchRow> {
  const row = await db
    .prepare(
      `INSERT INTO batches (id, key_id, endpoint, input_file_id, completion_window, status, metadata, created_at,
         expires_at, model, line_format)
       VALUES (?, ?, ?, ?, ?, 'validating', ?, ?, ?, ?, ?) RETURNING *`,
    )
    .bind(
      b.id,
      b.key_id,
      b.endpoint,
      b.input_file_id,
      b.completion_window,
      b.metadata,
      now,
      now + (b.windowMs ?? COMPLETION_WINDOW_MS),
      b.model ?? null,
      b.line_format ?? "openai",
    )
    .first<BatchRow>();
  return row!;
}

/** Any key's batch (the consumer's read); routes use `ownBatch`. */
export function getBatch(db: D1Database, id: string): Promise<BatchRow | null> {
  return db.prepare("SELECT * FROM batches WHERE id = ?").bind(id).first<BatchRow>();
}

export function ownBatch(db: D1Database, keyId: string, id: string): Promise<BatchRow | null> {
  return db.prepare("SELECT * FROM batches WHERE id = ? AND key_id = ?").bind(id, keyId).first<BatchRow>();
}

export async function listBatches(
  db: D1Database,
  keyId: string,
  q: { after?: string; limit: number },
): Promise<{ data: BatchRow[]; hasMore: boolean }> {
  const after = q.after ? "AND (created_at, id) < (SELECT created_at, id FROM batches WHERE id = ?)" : "";
  const { results } = await db
    .prepare(`SELECT * FROM batches WHERE key_id = ? ${after} ORDER BY created_at DESC, id DESC LIMIT ?`)
    .bind(...(q.after ? [keyId, q.after] : [keyId]), q.limit + 1)
    .all<BatchRow>();
  return { data: results.slice(0, q.limit), hasMore: results.length > q.limit };
}

/**
 * A page of the key's batches by offset (Mistral's `page`/`page_size`), newest or oldest first, with the
 * number of batches that match, for its `total`.
 */
export async function pageBatches(
  db: D1Database,
  keyId: string,
  q: { offset: number; limit: number; newestFirst: boolean; statuses?: BatchStatus[]; model?: string },
): Promise<{ data: BatchRow[]; total: number }> {
  const where = ["key_id = ?"];
  const args: (string | number)[] = [keyId];
  if (q.statuses) where.push(`status IN (${q.statuses.map(() => "?").join(",")})`), args.push(...q.statuses);
  if (q.model !== undefined) where.push("model = ?"), args.push(q.model);
  const dir = q.newestFirst ? "DESC" : "ASC";
  const [page, count] = await db.batch([
    db
      .prepare(
        `SELECT * FROM batches WHERE ${where.join(" AND ")} ORDER BY created_at ${dir}, id ${dir} LIMIT ? OFFSET ?`,
      )
      .bind(...args, q.limit, q.offset),
    db.prepare(`SELECT COUNT(*) AS n FROM batches WHERE ${where.join(" AND ")}`).bind(...args),
  ]);
  return { data: page!.results as BatchRow[], total: (count!.results[0] as { n: number }).n };
}

/** request_counts of many batches in one query. */
export async function countsOf(db: D1Database, rows: readonly BatchRow[]): Promise<Map<string, BatchRequestCounts>> {
  const out = new Map<string, BatchRequestCounts>(rows.map((r) => [r.id, { total: r.total, completed: 0, failed: 0 }]));
  if (rows.length === 0) return out;
  const { results } = await db
    .prepare(
      `SELECT batch_id, SUM(outcome = 'completed') AS completed, SUM(outcome = 'failed') AS failed
       FROM batch_lines WHERE batch_id IN (${rows.map(() => "?").join(",")}) GROUP BY batch_id`,
    )
    .bind(...rows.map((r) => r.id))
    .all<{ batch_id: string; completed: number; failed: number }>();
  for (const r of results) {
    const c = out.get(r.batch_id);
    if (c) Object.assign(c, { completed: r.completed, failed: r.failed });
  }
  return out;
}

/** Moves the batch to `to` (stamping `<to>_at`) only from one of `from`; true when this call moved it. */
export async function transition(
  db: D1Database,
  id: string,
  from: readonly BatchStatus[],
  to: BatchStatus,
  set: Partial<Pick<BatchRow, "total" | "errors" | "output_file_id" | "error_file_id">> = {},
  now = Date.now(),
): Promise<boolean> {
  const cols = Object.keys(set) as (keyof typeof set)[];
  const stamp = to === "validating" ? [] : [`${to}_at = ?`];
  const r = await db
    .prepare(
      `UPDATE batches SET status = ?, ${[...stamp, ...cols.map((k) => `${k} = ?`)].join(", ")}
       WHERE id = ? AND status IN (${from.map(() => "?").join(",")}) RETURNING id`,
    )
    .bind(to, ...(stamp.length ? [now] : []), ...cols.map((k) => set[k] ?? null), id, ...from)
    .first();
  return r !== null;
}

/** Stamps activity at `until` (now, or when a delayed line will be back): never moves it backwards. */
export async function touch(db: D1Database, id: string, until = Date.now()): Promise<void> {
  await db.prepare("UPDATE batches SET active_at = MAX(COALESCE(active_at, 0), ?) WHERE id = ?").bind(until, id).run();
}

/**
 * Claims the re-queue of generation `gen` (one caller wins when several see the batch stale at once):
 * bumps the generation and stamps activity. Returns the new generation, or null when another caller won.
 */
export async function claimRequeue(db: D1Database, id: string, gen: number, now = Date.now()): Promise<number | null> {
  const r = await db
    .prepare("UPDATE batches SET gen = gen + 1, active_at = ? WHERE id = ? AND gen = ? RETURNING gen")
    .bind(now, id, gen)
    .first<{ gen: number }>();
  return r?.gen ?? null;
}

export type Outcome = "completed" | "failed";

/** Records a finished line once; a second record of the same line (a retry) changes nothing. */
export async function recordLine(
  db: D1Database,
  batchId: string,
  line: number,
  outcome: Outcome,
  result: string,
  now = Date.now(),
): Promise<void> {
  await db
    .prepare("INSERT OR IGNORE INTO batch_lines (batch_id, line, outcome, result, recorded_at) VALUES (?, ?, ?, ?, ?)")
    .bind(batchId, line, outcome, result, now)
    .run();
}

/** Many failed lines at once (validation), in D1 batches of statements. */
export async function recordLines(
  db: D1Database,
  batchId: string,
  lines: readonly { line: number; outcome: Outcome; result: string }[],
  now = Date.now(),
): Promise<void> {
  const stmt = db.prepare(
    "INSERT OR IGNORE INTO batch_lines (batch_id, line, outcome, result, recorded_at) VALUES (?, ?, ?, ?, ?)",
  );
  for (let i = 0; i < lines.length; i += 100)
    await db.batch(lines.slice(i, i + 100).map((l) => stmt.bind(batchId, l.line, l.outcome, l.result, now)));
}

export async function isRecorded(db: D1Database, batchId: string, line: number): Promise<boolean> {
  return (
    (await db.prepare("SELECT 1 FROM batch_lines WHERE batch_id = ? AND line = ?").bind(batchId, line).first()) !== null
  );
}

/** The line numbers already recorded (a re-queue sends only the others). */
export async function recordedLineNumbers(db: D1Database, batchId: string): Promise<Set<number>> {
  const { results } = await db
    .prepare("SELECT line FROM batch_lines WHERE batch_id = ?")
    .bind(batchId)
    .all<{ line: number }>();
  return new Set(results.map((r) => r.line));
}

export async function recordedCount(db: D1Database, batchId: string): Promise<number> {
  const r = await db
    .prepare("SELECT COUNT(*) AS n FROM batch_lines WHERE batch_id = ?")
    .bind(batchId)
    .first<{ n: number }>();
  return r?.n ?? 0;
}

/** Whether any line ended because the window passed (the batch then ends `expired`). */
export async function anyExpired(db: D1Database, batchId: string): Promise<boolean> {
  const r = await db
    .prepare(
      "SELECT 1 FROM batch_lines WHERE batch_id = ? AND outcome = 'failed' AND result LIKE '%\"code\":\"batch_expired\"%' LIMIT 1",
    )
    .bind(batchId)
    .first();
  return r !== null;
}

/** The recorded result lines of one outcome, in input order, a page at a time (keyset on line). */
export async function resultPage(
  db: D1Database,
  batchId: string,
  outcome: Outcome,
  afterLine: number,
  limit = 500,
): Promise<{ line: number; result: string }[]> {
  const { results } = await db
    .prepare(
      "SELECT line, result FROM batch_lines WHERE batch_id = ? AND outcome = ? AND line > ? ORDER BY line LIMIT ?",
    )
    .bind(batchId, outcome, afterLine, limit)
    .all<{ line: number; result: string }>();
  return results;
}
