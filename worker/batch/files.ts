/**
 * Files of the Batch API: bytes in R2 (binding FILES, key `files/<id>`), metadata in D1 (`files`, owned
 * here). A file belongs to the key that uploaded it (or, for a batch's output and error files, to the
 * batch's key); every lookup is by id AND key, so any other key sees a 404, as for an id that never existed.
 */
import type { FileObject, FilePurpose } from "../../contract/api-batch";
import { badRequest, notFound } from "../errors";

/** Stated limits of an uploaded batch input file (docs/batch.md); each refusal is a 400 naming it. */
export const FILE_LIMITS = {
  /** Bytes per file. */
  maxBytes: 20 * 1024 * 1024,
  /** Non-blank lines per file. */
  maxLines: 10_000,
  /** Bytes per line: a line travels as one queue message (Cloudflare Queues: 128 KB). */
  maxLineBytes: 96 * 1024,
} as const;

export interface FileRow {
  id: string;
  key_id: string;
  filename: string;
  purpose: FilePurpose;
  bytes: number;
  lines: number;
  created_at: number;
}

/**
 * The file object: OpenAI's fields, and Mistral's (sample_type, source, num_lines, mimetype, deleted),
 * so both SDKs read the same answer of the same path. A batch's error file is named `…-errors` (finalize.ts).
 */
export function fileObject(r: FileRow): FileObject {
  const upload = r.purpose === "batch";
  return {
    id: r.id,
    object: "file",
    bytes: r.bytes,
    created_at: Math.floor(r.created_at / 1000),
    filename: r.filename,
    purpose: r.purpose,
    status: "processed",
    status_details: null,
    sample_type: upload ? "batch_request" : r.id.endsWith("-errors") ? "batch_error" : "batch_result",
    source: upload ? "upload" : "mistral",
    num_lines: r.lines,
    mimetype: "application/jsonl",
    deleted: false,
  };
}

export const newFileId = () => `file-${crypto.randomUUID().replaceAll("-", "")}`;
const objectKey = (id: string) => `files/${id}`;

export const fileNotFound = (id: string) => notFound(`No such file: '${id}'.`, "file_not_found");

/**
 * Checks an upload against FILE_LIMITS and counts its non-blank lines. Only the framing is checked here
 * (UTF-8, sizes, line count); each line's JSON is validated when a batch uses the file, line by line.
 */
export function checkUpload(bytes: Uint8Array): { lines: number } {
  const L = FILE_LIMITS;
  if (bytes.byteLength === 0) throw badRequest("The file is empty.", "file", "empty_file");
  if (bytes.byteLength > L.maxBytes)
    throw badRequest(
      `The file is ${bytes.byteLength} bytes; the limit is ${L.maxBytes} bytes.`,
      "file",
      "file_too_large",
    );
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw badRequest("The file is not valid UTF-8 text.", "file", "invalid_file");
  }
  let lines = 0;
  let n = 0;
  for (const line of text.split("\n")) {
    n++;
    if (line.trim() === "") continue;
    lines++;
    if (lines > L.maxLines)
      throw badRequest(`The file has more than ${L.maxLines} lines, the limit.`, "file", "too_many_lines");
    const size = new TextEncoder().encode(line).byteLength;
    if (size > L.maxLineBytes)
      throw badRequest(
        `Line ${n} is ${size} bytes; the limit is ${L.maxLineBytes} bytes per line.`,
        "file",
        "line_too_large",
      );
  }
  if (lines === 0) throw badRequest("The file has no non-blank line.", "file", "empty_file");
  return { lines };
}

/** Stores the bytes, then the row: a row always has its object (a crash between leaves only an orphan object). */
export async function putFile(
  env: { DB: D1Database; FILES: R2Bucket },
  f: Omit<FileRow, "bytes" | "created_at"> & { body: Uint8Array | string },
  now = Date.now(),
): Promise<FileRow> {
  const body = typeof f.body === "string" ? new TextEncoder().encode(f.body) : f.body;
  await env.FILES.put(objectKey(f.id), body, { httpMetadata: { contentType: "application/jsonl" } });
  const row: FileRow = {
    id: f.id,
    key_id: f.key_id,
    filename: f.filename,
    purpose: f.purpose,
    bytes: body.byteLength,
    lines: f.lines,
    created_at: now,
  };
  await env.DB.prepare(
    "INSERT OR IGNORE INTO files (id, key_id, filename, purpose, bytes, lines, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
  )
    .bind(row.id, row.key_id, row.filename, row.purpose, row.bytes, row.lines, row.created_at)
    .run();
  return row;
}

/** The key's file, or a 404. */
export async function getFile(db: D1Database, keyId: string, id: string): Promise<FileRow> {
  const r = await db.prepare("SELECT * FROM files WHERE id = ? AND key_id = ?").bind(id, keyId).first<FileRow>();
  if (!r) throw fileNotFound(id);
  return r;
}

export async function listFiles(
  db: D1Database,
  keyId: string,
  q: { after?: string; limit: number; purpose?: string; order: "asc" | "desc" },
): Promise<{ data: FileRow[]; hasMore: boolean }> {
  const where = ["key_id = ?"];
  const args: (string | number)[] = [keyId];
  if (q.purpose) where.push("purpose = ?"), args.push(q.purpose);
  if (q.after) {
    // Keyset paging on (created_at, id): stable while files are added or deleted.
    where.push(`(created_at, id) ${q.order === "desc" ? "<" : ">"} (SELECT created_at, id FROM files WHERE id = ?)`);
    args.push(q.after);
  }
  const dir = q.order === "desc" ? "DESC" : "ASC";
  const { results } = await db
    .prepare(`SELECT * FROM files WHERE ${where.join(" AND ")} ORDER BY created_at ${dir}, id ${dir} LIMIT ?`)
    .bind(...args, q.limit + 1)
    .all<FileRow>();
  return { data: results.slice(0, q.limit), hasMore: results.length > q.limit };
}

/** The file's bytes as a stream, or a 404 (its row and its object are both needed). */
export async function fileContent(env: { DB: D1Database; FILES: R2Bucket }, keyId: string, id: string) {
  const row = await getFile(env.DB, keyId, id);
  const obj = await env.FILES.get(objectKey(row.id));
  if (!obj) throw fileNotFound(id);
  return { row, body: obj.body };
}

/** The whole text of a file by id (the batch's own read of its input; ownership was checked at creation). */
export async function readText(bucket: R2Bucket, id: string): Promise<string | null> {
  const obj = await bucket.get(objectKey(id));
  return obj ? obj.text() : null;
}

/** Deletes the row first (the file is gone for every reader at once), then its bytes. */
export async function deleteFile(env: { DB: D1Database; FILES: R2Bucket }, keyId: string, id: string): Promise<void> {
  const r = await env.DB.prepare("DELETE FROM files WHERE id = ? AND key_id = ? RETURNING id").bind(id, keyId).first();
  if (!r) throw fileNotFound(id);
  await env.FILES.delete(objectKey(id));
}
