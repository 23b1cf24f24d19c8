/** The OpenAI batch object, from a batches row and its line counts (times in whole seconds). */
import type { Batch, BatchRequestCounts } from "../../contract/api-batch";
import type { BatchRow } from "./store";

const sec = (ms: number | null) => (ms === null ? null : Math.floor(ms / 1000));

export function batchObject(r: BatchRow, counts: BatchRequestCounts): Batch {
  return {
    id: r.id,
    object: "batch",
    endpoint: r.endpoint,
    errors: r.errors === null ? null : (JSON.parse(r.errors) as Batch["errors"]),
    input_file_id: r.input_file_id,
    completion_window: r.completion_window,
    status: r.status,
    output_file_id: r.output_file_id,
    error_file_id: r.error_file_id,
    created_at: sec(r.created_at) as number,
    in_progress_at: sec(r.in_progress_at),
    expires_at: sec(r.expires_at),
    finalizing_at: sec(r.finalizing_at),
    completed_at: sec(r.completed_at),
    failed_at: sec(r.failed_at),
    expired_at: sec(r.expired_at),
    cancelling_at: sec(r.cancelling_at),
    cancelled_at: sec(r.cancelled_at),
    request_counts: counts,
    metadata: r.metadata === null ? null : (JSON.parse(r.metadata) as Record<string, string>),
  };
}
