/**
 * Response bodies of the Files and Batch API, in OpenAI's shapes (contract/api-common.ts says how these
 * schemas are used). worker/batch/ builds them from its D1 rows.
 */
import { z } from "zod";
import { count, epochS, listPage } from "./api-common";

export const FilePurpose = z
  .enum(["batch", "batch_output"])
  .describe("`batch`: an upload; `batch_output`: a batch's output or error file.");
export type FilePurpose = z.output<typeof FilePurpose>;

export const FileObject = z
  .object({
    id: z.string(),
    object: z.literal("file"),
    bytes: count,
    created_at: epochS,
    filename: z.string(),
    purpose: FilePurpose,
    status: z.literal("processed"),
    status_details: z.null(),
    sample_type: z
      .enum(["batch_request", "batch_result", "batch_error"])
      .describe("Mistral's field: an upload, a batch's output file, or its error file."),
    source: z.enum(["upload", "mistral"]).describe("Mistral's field: `upload`, or `mistral` for a file the API wrote."),
    num_lines: count.describe("Mistral's field: non-blank lines."),
    mimetype: z.literal("application/jsonl"),
    deleted: z.literal(false).describe("Mistral's field."),
  })
  .describe(
    "A stored file: OpenAI's fields and Mistral's, so both SDKs read it. Visible only to the key that owns it.",
  );
export type FileObject = z.output<typeof FileObject>;
export const FileList = listPage(FileObject);
export type FileList = z.output<typeof FileList>;
export const DeletedFile = z.object({ id: z.string(), object: z.literal("file"), deleted: z.literal(true) });
export type DeletedFile = z.output<typeof DeletedFile>;

export const BatchStatus = z.enum([
  "validating",
  "failed",
  "in_progress",
  "finalizing",
  "completed",
  "expired",
  "cancelling",
  "cancelled",
]);
export type BatchStatus = z.output<typeof BatchStatus>;

export const BatchEndpoint = z.enum(["/v1/chat/completions", "/v1/embeddings"]);
export type BatchEndpoint = z.output<typeof BatchEndpoint>;

/** What was wrong with one line of a batch that failed validation. */
export const BatchError = z.object({
  code: z.string(),
  message: z.string(),
  param: z.string().nullable(),
  line: z.number().int().nullable(),
});
export type BatchError = z.output<typeof BatchError>;
export const BatchErrors = z
  .object({ object: z.literal("list"), data: z.array(BatchError) })
  .nullable()
  .describe("Why the batch failed validation (no valid line), at most 100 lines.");

export const BatchRequestCounts = z.object({ total: count, completed: count, failed: count });
export type BatchRequestCounts = z.output<typeof BatchRequestCounts>;

export const Batch = z
  .object({
    id: z.string(),
    object: z.literal("batch"),
    endpoint: BatchEndpoint,
    errors: BatchErrors,
    input_file_id: z.string(),
    completion_window: z.string(),
    status: BatchStatus,
    output_file_id: z.string().nullable(),
    error_file_id: z.string().nullable(),
    created_at: epochS,
    in_progress_at: epochS.nullable(),
    expires_at: epochS.nullable(),
    finalizing_at: epochS.nullable(),
    completed_at: epochS.nullable(),
    failed_at: epochS.nullable(),
    expired_at: epochS.nullable(),
    cancelling_at: epochS.nullable(),
    cancelled_at: epochS.nullable(),
    request_counts: BatchRequestCounts,
    metadata: z.record(z.string(), z.string()).nullable(),
  })
  .describe("A batch (OpenAI's shape). Lines run at half the tier's per-token prices.");
export type Batch = z.output<typeof Batch>;
export const BatchList = listPage(Batch);
export type BatchList = z.output<typeof BatchList>;

export const BatchJobStatus = z.enum([
  "QUEUED",
  "RUNNING",
  "SUCCESS",
  "FAILED",
  "TIMEOUT_EXCEEDED",
  "CANCELLATION_REQUESTED",
  "CANCELLED",
]);
export type BatchJobStatus = z.output<typeof BatchJobStatus>;

export const BatchJob = z
  .object({
    id: z.string(),
    object: z.literal("batch"),
    input_files: z.array(z.string()),
    metadata: z.record(z.string(), z.string()).nullable(),
    endpoint: BatchEndpoint,
    model: z.string().nullable().describe("The job's model, set on every line (null: each line names its own)."),
    output_file: z.string().nullable(),
    error_file: z.string().nullable(),
    errors: z
      .array(z.object({ message: z.string(), count: count }))
      .describe("Why the job failed validation (no valid line), at most 100 lines."),
    status: BatchJobStatus,
    created_at: epochS,
    total_requests: count,
    completed_requests: count.describe("Succeeded plus failed."),
    succeeded_requests: count,
    failed_requests: count,
    started_at: epochS.nullable(),
    completed_at: epochS.nullable(),
  })
  .describe("A batch in Mistral's job shape: the same batch as in OpenAI's shape, at the same half price.");
export type BatchJob = z.output<typeof BatchJob>;
export const BatchJobList = z.object({
  object: z.literal("list"),
  data: z.array(BatchJob),
  total: count.describe("Jobs matching the filters, over all pages."),
});
export type BatchJobList = z.output<typeof BatchJobList>;
