/**
 * The Files API in OpenAI's shape, for batch input files (worker/batch/files.ts stores them):
 *   POST /v1/files (multipart: `file`, `purpose: "batch"`), GET /v1/files, GET /v1/files/{id},
 *   GET /v1/files/{id}/content, DELETE /v1/files/{id}.
 * A file is visible only to the key that made it; any other key gets the same 404 as for a missing id.
 */
import { z } from "zod";
import type { DeletedFile, FileList } from "../../contract/api-batch";
import { badRequest } from "../errors";
import { factory } from "../factory";
import {
  FILE_LIMITS,
  checkUpload,
  deleteFile,
  fileContent,
  fileObject,
  getFile,
  listFiles,
  newFileId,
  putFile,
} from "../batch/files";
import { listQuery } from "../batch/paging";

export const filesRoutes = factory.createApp();

/** Multipart framing on top of the file itself. */
const MULTIPART_SLACK = 64 * 1024;
const MAX_FILENAME = 256;

filesRoutes.post("/files", async (c) => {
  const declared = c.req.header("content-length");
  if (declared !== undefined && Number(declared) > FILE_LIMITS.maxBytes + MULTIPART_SLACK)
    throw badRequest(`The file is larger than the limit of ${FILE_LIMITS.maxBytes} bytes.`, "file", "file_too_large");
  if (!(c.req.header("content-type") ?? "").startsWith("multipart/form-data"))
    throw badRequest("Upload the file as multipart/form-data with fields 'file' and 'purpose'.", "file");
  let form: FormData;
  try {
    form = await c.req.formData();
  } catch {
    throw badRequest("The multipart body could not be read.", "file");
  }
  const purpose = form.get("purpose");
  if (purpose !== "batch")
    throw badRequest(
      `'purpose' must be "batch" (the only purpose this API stores files for); got ${JSON.stringify(purpose)}.`,
      "purpose",
      "invalid_purpose",
    );
  const file = form.get("file");
  if (file === null || typeof file === "string")
    throw badRequest("'file' is required: a JSONL file part.", "file", "missing_file");
  const bytes = new Uint8Array(await file.arrayBuffer());
  const { lines } = checkUpload(bytes);
  const row = await putFile(c.env, {
    id: newFileId(),
    key_id: c.get("account").keyId,
    filename: (file.name || "upload.jsonl").slice(0, MAX_FILENAME),
    purpose: "batch",
    lines,
    body: bytes,
  });
  return c.json(fileObject(row));
});

const FilesQuery = z.object({
  purpose: z.enum(["batch", "batch_output"]).optional(),
  order: z.enum(["asc", "desc"]).default("desc"),
});

filesRoutes.get("/files", async (c) => {
  const { after, limit } = listQuery(c.req.query(), 10_000);
  const q = FilesQuery.safeParse(c.req.query());
  if (!q.success) throw badRequest("'purpose' must be batch or batch_output, 'order' asc or desc.", "purpose");
  const page = await listFiles(c.env.DB, c.get("account").keyId, { after, limit, ...q.data });
  const data = page.data.map(fileObject);
  return c.json({
    object: "list",
    data,
    first_id: data[0]?.id ?? null,
    last_id: data.at(-1)?.id ?? null,
    has_more: page.hasMore,
  } satisfies FileList);
});

filesRoutes.get("/files/:id", async (c) =>
  c.json(fileObject(await getFile(c.env.DB, c.get("account").keyId, c.req.param("id")))),
);

/** The bytes are JSONL; a client that accepts only octet-stream (Mistral's SDK, which checks) is told so. */
const contentType = (accept: string | undefined) =>
  accept?.includes("application/octet-stream") && !accept.includes("application/jsonl")
    ? "application/octet-stream"
    : "application/jsonl";

filesRoutes.get("/files/:id/content", async (c) => {
  const { row, body } = await fileContent(c.env, c.get("account").keyId, c.req.param("id"));
  return new Response(body, {
    headers: {
      "content-type": contentType(c.req.header("accept")),
      "content-length": String(row.bytes),
      "content-disposition": `attachment; filename="${row.filename.replaceAll('"', "")}"`,
    },
  });
});

filesRoutes.delete("/files/:id", async (c) => {
  const id = c.req.param("id");
  await deleteFile(c.env, c.get("account").keyId, id);
  return c.json({ id, object: "file", deleted: true } satisfies DeletedFile);
});
