/**
 * GET /openapi.json: the public API as an OpenAPI 3.1 document, public like the API's docs would be
 * (no key, any origin). Generated from the zod schemas that validate the request bodies (exported by
 * their routes) and the response schemas (contract/api-*.ts); built once per isolate.
 * test/workers/openapi.test.ts checks every route the app registers is here (and nothing else is);
 * test/node/openapi-responses.test.ts validates the real stack's responses against it.
 */
import { z } from "zod";
import * as Accounts from "../../contract/api-accounts";
import * as Batches from "../../contract/api-batch";
import * as Chat from "../../contract/api-chat";
import * as Common from "../../contract/api-common";
import { ChatBodySchema } from "../api/chat-request";
import { openApiDocument, type Operation, type Param } from "../api/openapi";
import { CACHE_TTL_HEADER, MAX_CACHE_TTL_S } from "../completion/response-cache";
import { factory } from "../factory";
import { createSchema, patchSchema } from "./admin";
import { EmbedBodySchema, MAX_EMBED_TOKENS, MAX_INPUTS } from "./embeddings";
import { DetokenizeSchema, TokenizeSchema } from "./tokenize";
import { CreateBatchSchema } from "./batches";
import { CreateBatchJobSchema } from "./batch-jobs";
import { batchOperations, UploadFileSchema } from "./openapi-batch";

const requests = {
  ChatCompletionRequest: ChatBodySchema,
  EmbeddingRequest: EmbedBodySchema,
  TokenizeRequest: TokenizeSchema,
  DetokenizeRequest: DetokenizeSchema,
  CreateKeyRequest: createSchema,
  UpdateKeyRequest: patchSchema,
  UploadFileRequest: UploadFileSchema,
  CreateBatchRequest: CreateBatchSchema,
  CreateBatchJobRequest: CreateBatchJobSchema,
};

const responses = {
  ReplicaList: Accounts.ReplicaList,
  Error: Common.ErrorResponse,
  Usage: Chat.Usage,
  ChatCompletion: Chat.ChatCompletion,
  ChatCompletionChunk: Chat.ChatCompletionChunk,
  Embeddings: Chat.Embeddings,
  Model: Chat.Model,
  ModelList: Chat.ModelList,
  KeyStatus: Accounts.KeyStatus,
  UsageDays: Accounts.UsageDays,
  UsageRequests: Accounts.UsageRequests,
  Tokenized: Chat.Tokenized,
  Detokenized: Chat.Detokenized,
  Health: Common.Health,
  ApiKey: Accounts.ApiKey,
  CreatedApiKey: Accounts.CreatedApiKey,
  DeletedApiKey: Accounts.DeletedApiKey,
  ApiKeyList: Accounts.ApiKeyList,
  AdminUsageDays: Accounts.AdminUsageDays,
  DeadLetters: Accounts.DeadLetters,
  RejectedUsageReports: Accounts.RejectedUsageReports,
  DeadLetterReplay: Accounts.DeadLetterReplay,
  FileObject: Batches.FileObject,
  FileList: Batches.FileList,
  DeletedFile: Batches.DeletedFile,
  Batch: Batches.Batch,
  BatchList: Batches.BatchList,
  BatchJob: Batches.BatchJob,
  BatchJobList: Batches.BatchJobList,
  OpenApi: z.looseObject({ openapi: z.literal("3.1.0"), info: z.looseObject({ title: z.string() }) }),
};

type Op = Operation<keyof typeof requests, keyof typeof responses>;

const date = (description: string): Param => ({
  schema: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  description: `${description} (YYYY-MM-DD, UTC, inclusive).`,
});
const limit: Param = { schema: z.int().min(1).max(1000).default(100), description: "How many records, newest first." };
const requestId: Param = { schema: z.string(), description: "Only this request's record." };
const keyId: Param = { schema: z.string(), description: "Only this key's records." };
const id: Param = { schema: z.string(), description: "The key's id." };

const operations: Op[] = [
  {
    method: "post",
    path: "/v1/chat/completions",
    tag: "Chat",
    auth: "key",
    summary: "Chat completion (JSON, or server-sent events with `stream: true`)",
    description:
      "OpenAI/Mistral compatible. Unknown fields are ignored; `null` means unset. A stream sends `data:` events, each a chunk (or, when the answer fails or the key is revoked mid-way, an error), and ends with `data: [DONE]` after a normal end.",
    headers: {
      [CACHE_TTL_HEADER]: {
        schema: z.int().min(1).max(MAX_CACHE_TTL_S),
        description: "Seconds to cache a deterministic answer (temperature 0 or a seed) for the same key and prompt.",
      },
    },
    body: "ChatCompletionRequest",
    responses: {
      "200": {
        description: "The completion, or its stream.",
        json: "ChatCompletion",
        events: ["ChatCompletionChunk", "Error"],
        rateLimited: true,
      },
    },
  },
  {
    method: "post",
    path: "/v1/embeddings",
    tag: "Embeddings",
    auth: "key",
    summary: "Embeddings (tiers of kind `embedding`)",
    description: `Strings are tokenized with BOS; token arrays are sent as given. At most ${MAX_INPUTS} inputs and ${MAX_EMBED_TOKENS} tokens per request.`,
    body: "EmbeddingRequest",
    responses: { "200": { description: "One embedding per input, in order.", json: "Embeddings", rateLimited: true } },
  },
  {
    method: "get",
    path: "/v1/models",
    tag: "Models",
    auth: "key",
    summary: "The models (tiers) this key may use",
    responses: { "200": { description: "The key's models.", json: "ModelList" } },
  },
  {
    method: "get",
    path: "/v1/models/{id}",
    tag: "Models",
    auth: "key",
    summary: "One model of this key's plan",
    params: { id: { schema: z.string(), description: "The model's name, e.g. mistral-small." } },
    responses: { "200": { description: "The model.", json: "Model" } },
  },
  {
    method: "post",
    path: "/v1/tokenize",
    tag: "Tokenize",
    auth: "key",
    summary: "Token ids of a prompt (no BOS) or of chat messages (the chat template, BOS included)",
    description: "vLLM's shape. Send exactly one of `prompt` or `messages`. Unmetered; counts against the key's RPM.",
    body: "TokenizeRequest",
    responses: { "200": { description: "The ids.", json: "Tokenized", rateLimited: true } },
  },
  {
    method: "post",
    path: "/v1/detokenize",
    tag: "Tokenize",
    auth: "key",
    summary: "The text of token ids",
    body: "DetokenizeRequest",
    responses: { "200": { description: "The text.", json: "Detokenized", rateLimited: true } },
  },
  {
    method: "get",
    path: "/v1/key",
    tag: "Account",
    auth: "key",
    summary: "This key's plan, and this month's spend, reservations and what remains",
    responses: { "200": { description: "The key's status.", json: "KeyStatus" } },
  },
  {
    method: "get",
    path: "/v1/usage",
    tag: "Account",
    auth: "key",
    summary: "This key's usage, one row per tier and UTC day",
    query: { from: date("First day; default the 1st of this month"), to: date("Last day") },
    responses: { "200": { description: "Usage rows.", json: "UsageDays" } },
  },
  {
    method: "get",
    path: "/v1/usage/requests",
    tag: "Account",
    auth: "key",
    summary: "This key's per-request ledger records",
    query: { request_id: requestId, limit },
    responses: { "200": { description: "Records, newest first.", json: "UsageRequests" } },
  },
  {
    method: "post",
    path: "/v1/admin/keys",
    tag: "Admin",
    auth: "admin",
    summary: "Create an API key",
    body: "CreateKeyRequest",
    responses: { "201": { description: "The key, with its secret (shown only here).", json: "CreatedApiKey" } },
  },
  {
    method: "get",
    path: "/v1/admin/keys",
    tag: "Admin",
    auth: "admin",
    summary: "List keys (never their secrets)",
    responses: { "200": { description: "Every key.", json: "ApiKeyList" } },
  },
  {
    method: "get",
    path: "/v1/admin/keys/{id}",
    tag: "Admin",
    auth: "admin",
    summary: "One key",
    params: { id },
    responses: { "200": { description: "The key.", json: "ApiKey" } },
  },
  {
    method: "patch",
    path: "/v1/admin/keys/{id}",
    tag: "Admin",
    auth: "admin",
    summary: "Change a key's plan",
    params: { id },
    body: "UpdateKeyRequest",
    responses: { "200": { description: "The key as changed.", json: "ApiKey" } },
  },
  {
    method: "delete",
    path: "/v1/admin/keys/{id}",
    tag: "Admin",
    auth: "admin",
    summary: "Revoke a key (idempotent)",
    params: { id },
    responses: { "200": { description: "The revoked key.", json: "DeletedApiKey" } },
  },
  {
    method: "get",
    path: "/v1/admin/usage",
    tag: "Admin",
    auth: "admin",
    summary: "Usage per key, tier and UTC day",
    query: { key_id: keyId, from: date("First day"), to: date("Last day") },
    responses: { "200": { description: "Usage rows.", json: "AdminUsageDays" } },
  },
  {
    method: "get",
    path: "/v1/admin/usage/requests",
    tag: "Admin",
    auth: "admin",
    summary: "Per-request ledger records",
    query: { key_id: keyId, request_id: requestId, limit },
    responses: { "200": { description: "Records, newest first.", json: "UsageRequests" } },
  },
  {
    method: "get",
    path: "/v1/admin/replicas",
    tag: "Admin",
    auth: "admin",
    summary: "The live replicas: state, load, KV room and requests served",
    responses: { "200": { description: "The replicas.", json: "ReplicaList" } },
  },
  {
    method: "get",
    path: "/v1/admin/usage/dead-letters",
    tag: "Admin",
    auth: "admin",
    summary: "How many usage records the queue's dead-letter queue parked",
    responses: { "200": { description: "The count.", json: "DeadLetters" } },
  },
  {
    method: "post",
    path: "/v1/admin/usage/dead-letters/replay",
    tag: "Admin",
    auth: "admin",
    summary: "Write parked usage records to the ledger (idempotent)",
    query: { limit },
    responses: { "200": { description: "What was replayed.", json: "DeadLetterReplay" } },
  },
  {
    method: "get",
    path: "/v1/admin/usage/rejected-reports",
    tag: "Admin",
    auth: "admin",
    summary: "Usage reports refused because their request id was never admitted (never billed)",
    query: { limit },
    responses: { "200": { description: "Their count and the latest ones.", json: "RejectedUsageReports" } },
  },
  {
    method: "get",
    path: "/health",
    tag: "Meta",
    auth: "none",
    summary: "Liveness",
    responses: { "200": { description: "The worker answers.", json: "Health" } },
  },
  {
    method: "get",
    path: "/openapi.json",
    tag: "Meta",
    auth: "none",
    summary: "This document",
    responses: { "200": { description: "OpenAPI 3.1.", json: "OpenApi" } },
  },
  ...batchOperations(),
];

let body: string | undefined;

/** The document, serialised once per isolate. */
export function openApiJson(): string {
  body ??= JSON.stringify(
    openApiDocument({
      info: {
        title: "moe-edge",
        version: "v1",
        description:
          "Pay-per-token chat completions and embeddings, OpenAI/Mistral compatible. Errors are `{error: {message, type, param, code}}`; every response carries `x-request-id`. Money is in integer micro-euros.",
      },
      requests,
      responses,
      error: "Error",
      operations,
    }),
  );
  return body;
}

export const openApiRoutes = factory.createApp();

openApiRoutes.get("/openapi.json", () => {
  return new Response(openApiJson(), {
    headers: {
      "content-type": "application/json; charset=utf-8",
      // Public and credential-free: any origin may read it (API explorers run in the browser).
      "access-control-allow-origin": "*",
      "cache-control": "public, max-age=300",
    },
  });
});
