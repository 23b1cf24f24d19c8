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
  })
  .describe("A stored file (OpenAI's shape). Visible only to the key that owns it.");
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
