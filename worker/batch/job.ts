/**
 * Mistral's batch job object (`/v1/batch/jobs`), from the same batches row and line counts as OpenAI's
 * batch object (object.ts): another view of one batch, not another batch. Times in whole seconds.
 */
import {
  type BatchError,
  type BatchJob,
  BatchJobStatus,
  type BatchRequestCounts,
  type BatchStatus,
} from "../../contract/api-batch";
import type { BatchRow } from "./store";

export const JOB_STATUSES = BatchJobStatus.options;
export type JobStatus = BatchJobStatus;

const STATUS: Record<BatchStatus, JobStatus> = {
  validating: "QUEUED",
  in_progress: "RUNNING",
  finalizing: "RUNNING",
  completed: "SUCCESS",
  failed: "FAILED",
  expired: "TIMEOUT_EXCEEDED",
  cancelling: "CANCELLATION_REQUESTED",
  cancelled: "CANCELLED",
};

/** The batch statuses a job status stands for (a list filter). */
export const batchStatusesOf = (job: JobStatus): BatchStatus[] =>
  (Object.keys(STATUS) as BatchStatus[]).filter((s) => STATUS[s] === job);

const sec = (ms: number | null) => (ms === null ? null : Math.floor(ms / 1000));

export function jobObject(r: BatchRow, counts: BatchRequestCounts): BatchJob {
  const errors = r.errors === null ? [] : (JSON.parse(r.errors) as { data: BatchError[] }).data;
  return {
    id: r.id,
    object: "batch",
    input_files: [r.input_file_id],
    metadata: r.metadata === null ? null : (JSON.parse(r.metadata) as Record<string, string>),
    endpoint: r.endpoint,
    model: r.model,
    output_file: r.output_file_id,
    error_file: r.error_file_id,
    errors: errors.map((e) => ({ message: e.message, count: 1 })),
    status: STATUS[r.status],
    created_at: sec(r.created_at) as number,
    total_requests: counts.total,
    completed_requests: counts.completed + counts.failed,
    succeeded_requests: counts.completed,
    failed_requests: counts.failed,
    started_at: sec(r.in_progress_at),
    completed_at: sec(r.completed_at ?? r.failed_at ?? r.expired_at ?? r.cancelled_at),
  };
}
export type JobObject = BatchJob;
