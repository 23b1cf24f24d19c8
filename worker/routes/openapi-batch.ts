/** The Files and Batch API's operations in the OpenAPI document (routes/openapi.ts). */
import { z } from "zod";
import type { Operation, Param } from "../api/openapi";
import { FILE_LIMITS } from "../batch/files";

type BatchResponse = "Batch" | "BatchList" | "BatchJob" | "BatchJobList" | "DeletedFile" | "FileList" | "FileObject";

export const UploadFileSchema = z.object({
  file: z
    .string()
    .describe(
      `The JSONL file: at most ${FILE_LIMITS.maxBytes} bytes, ${FILE_LIMITS.maxLines} non-blank lines, ${FILE_LIMITS.maxLineBytes} bytes per line.`,
    ),
  purpose: z.literal("batch"),
});

const fileId: Param = { schema: z.string(), description: "The file's id." };
const batchId: Param = { schema: z.string(), description: "The batch's id." };
const jobId: Param = { schema: z.string(), description: "The job's id (a batch id)." };

/** Typed by the caller's request and response schema names, which include the batch ones used here. */
export const batchOperations = (): Operation<
  "UploadFileRequest" | "CreateBatchRequest" | "CreateBatchJobRequest",
  BatchResponse
>[] => [
  {
    method: "post",
    path: "/v1/files",
    tag: "Batch",
    auth: "key",
    summary: "Upload a batch input file (multipart: `file`, `purpose: batch`)",
    description:
      'Each line: `{custom_id, method: "POST", url, body}`. The file belongs to this key; any other key gets 404.',
    body: "UploadFileRequest",
    multipart: true,
    responses: { "200": { description: "The stored file.", json: "FileObject" } },
  },
  {
    method: "get",
    path: "/v1/files",
    tag: "Batch",
    auth: "key",
    summary: "This key's files, newest first",
    query: {
      after: { schema: z.string(), description: "A file id: list the files after it." },
      limit: { schema: z.int().min(1).max(10_000).default(20), description: "Files per page." },
      purpose: { schema: z.enum(["batch", "batch_output"]), description: "Only files of this purpose." },
      order: { schema: z.enum(["asc", "desc"]).default("desc"), description: "By creation time." },
    },
    responses: { "200": { description: "A page of files.", json: "FileList" } },
  },
  {
    method: "get",
    path: "/v1/files/{id}",
    tag: "Batch",
    auth: "key",
    summary: "One file",
    params: { id: fileId },
    responses: { "200": { description: "The file.", json: "FileObject" } },
  },
  {
    method: "get",
    path: "/v1/files/{id}/content",
    tag: "Batch",
    auth: "key",
    summary: "A file's bytes (an input file, or a batch's output or error file)",
    description:
      "The JSONL bytes, as `application/jsonl`; as `application/octet-stream` when the request's Accept asks for it (Mistral's SDK does).",
    params: { id: fileId },
    responses: {
      "200": { description: "The JSONL content.", raw: ["application/jsonl", "application/octet-stream"] },
    },
  },
  {
    method: "delete",
    path: "/v1/files/{id}",
    tag: "Batch",
    auth: "key",
    summary: "Delete a file",
    params: { id: fileId },
    responses: { "200": { description: "Deleted.", json: "DeletedFile" } },
  },
  {
    method: "post",
    path: "/v1/batches",
    tag: "Batch",
    auth: "key",
    summary: "Create a batch from an uploaded file",
    description:
      "Lines run through the same admission, limits and budget as interactive requests, at half the tier's per-token prices, only on capacity interactive traffic leaves idle. Status: validating -> in_progress -> finalizing -> completed, or failed (no valid line), expired (the 24 h window ended; finished lines delivered), cancelling -> cancelled.",
    body: "CreateBatchRequest",
    responses: { "200": { description: "The batch (status `validating`).", json: "Batch" } },
  },
  {
    method: "get",
    path: "/v1/batches",
    tag: "Batch",
    auth: "key",
    summary: "This key's batches, newest first",
    query: {
      after: { schema: z.string(), description: "A batch id: list the batches after it." },
      limit: { schema: z.int().min(1).max(100).default(20), description: "Batches per page." },
    },
    responses: { "200": { description: "A page of batches.", json: "BatchList" } },
  },
  {
    method: "get",
    path: "/v1/batches/{id}",
    tag: "Batch",
    auth: "key",
    summary: "One batch, with its request_counts",
    params: { id: batchId },
    responses: { "200": { description: "The batch.", json: "Batch" } },
  },
  {
    method: "post",
    path: "/v1/batches/{id}/cancel",
    tag: "Batch",
    auth: "key",
    summary: "Cancel a batch: no new line starts; running lines are cancelled and billed what they generated",
    params: { id: batchId },
    responses: { "200": { description: "The batch (status `cancelling`, or already final).", json: "Batch" } },
  },
  {
    method: "post",
    path: "/v1/batch/jobs",
    tag: "Batch",
    auth: "key",
    summary: "Create a batch in Mistral's job shape",
    description:
      "The same batches as /v1/batches, in Mistral's shape: one input file of `{custom_id, body}` lines (or the same lines inline in `requests`), `model` set on every line, `timeout_hours` 1 to 24. Status: QUEUED -> RUNNING -> SUCCESS, or FAILED (no valid line), TIMEOUT_EXCEEDED, CANCELLATION_REQUESTED -> CANCELLED.",
    body: "CreateBatchJobRequest",
    responses: { "200": { description: "The job (status `QUEUED`).", json: "BatchJob" } },
  },
  {
    method: "get",
    path: "/v1/batch/jobs",
    tag: "Batch",
    auth: "key",
    summary: "This key's batches as Mistral jobs, a page at a time",
    query: {
      page: { schema: z.int().min(0).default(0), description: "The page, from 0." },
      page_size: { schema: z.int().min(1).max(100).default(100), description: "Jobs per page." },
      status: {
        schema: z.enum([
          "QUEUED",
          "RUNNING",
          "SUCCESS",
          "FAILED",
          "TIMEOUT_EXCEEDED",
          "CANCELLATION_REQUESTED",
          "CANCELLED",
        ]),
        description: "Only jobs in this status (repeat it for several).",
      },
      model: { schema: z.string(), description: "Only jobs of this model." },
      order_by: { schema: z.enum(["created", "-created"]).default("-created"), description: "By creation time." },
    },
    responses: { "200": { description: "A page of jobs, with the total.", json: "BatchJobList" } },
  },
  {
    method: "get",
    path: "/v1/batch/jobs/{job_id}",
    tag: "Batch",
    auth: "key",
    summary: "One batch as a Mistral job",
    params: { job_id: jobId },
    responses: { "200": { description: "The job.", json: "BatchJob" } },
  },
  {
    method: "post",
    path: "/v1/batch/jobs/{job_id}/cancel",
    tag: "Batch",
    auth: "key",
    summary: "Cancel a job (as /v1/batches/{id}/cancel)",
    params: { job_id: jobId },
    responses: { "200": { description: "The job (`CANCELLATION_REQUESTED`, or already final).", json: "BatchJob" } },
  },
];
