/**
 * The API responses the console reads: the types of the zod schemas the API declares them with
 * (contract/api-*.ts), never written out again here. Type-only: nothing of zod reaches the bundle
 * (test/node/console-build.test.ts checks).
 */
import type { ChatCompletionChunk } from "../../../contract/api-chat";
import type { ErrorResponse } from "../../../contract/api-common";

export type {
  AdminUsageDay,
  AdminUsageDays,
  ApiKey,
  ApiKeyList,
  CreatedApiKey,
  KeyStatus,
  ReplicaList,
  ReplicaView,
  UsageDay,
  UsageDays,
  UsageRequest,
  UsageRequests,
} from "../../../contract/api-accounts";
export type { Batch, BatchList } from "../../../contract/api-batch";
export type { Model, ModelList, ToolCall, ToolCallPiece, Usage } from "../../../contract/api-chat";

/**
 * One SSE event of /v1/chat/completions: a chunk, or the error event that ends a failed stream. Parsed
 * from the wire, not validated, so every field is read as optional.
 */
export type ChatChunk = Partial<ChatCompletionChunk> & Partial<ErrorResponse>;
