/**
 * Validation of POST /v1/chat/completions bodies (Mistral + OpenAI fields).
 * Unknown fields are ignored (LangChain and SDKs send extras); known ones are checked and a bad one
 * is a 400 naming it in `param`. `null` means "not set" everywhere (SDKs send nulls).
 */
import { z } from "zod";
import { compileSchema, SchemaError } from "../../contract/json-schema";
import { MAX_TOP_LOGPROBS, type ResponseFormat } from "../../contract/wire";
import { parseBody } from "./body";
import { ApiError, badRequest } from "../errors";
import type { ChatMessage } from "../tokenizer";
import {
  checkToolAnswers,
  HistoryCallSchema,
  type HistoryMessage,
  historyCalls,
  ParallelToolCallsFieldSchema,
  parseToolConfig,
  planTools,
  ToolChoiceFieldSchema,
  ToolsFieldSchema,
  type ToolPlan,
  ToolsError,
} from "../tools";

/** Mistral's guardrail, prepended as a system message when `safe_prompt` is true. */
export const SAFE_PROMPT =
  "Always assist with care, respect, and truth. Respond with utmost utility yet securely. Avoid harmful, unethical, prejudiced, or negative content. Ensure replies promote fairness and positivity.";

/** Mistral's API default; OpenAI's is 1. */
export const DEFAULT_TEMPERATURE = 0.7;
export const MAX_STOP_SEQUENCES = 16;
export const MAX_STOP_LENGTH = 256;

const textPart = z.object({ type: z.literal("text"), text: z.string() });
const content = z.union([z.string(), z.array(z.unknown())]);

const message = z.object({
  role: z.string(),
  content: content.nullish(),
  /** Mistral: continue this (last, assistant) message instead of starting a new turn. */
  prefix: z.boolean().nullish(),
  /** Assistant: the calls it made (tools/history.ts). */
  tool_calls: z.array(HistoryCallSchema).nullish(),
  /** Tool: the call this result answers. */
  tool_call_id: z.string().max(256).nullish(),
  /** Tool (Mistral): the function's name. */
  name: z.string().max(256).nullish(),
});

const optNum = (min: number, max: number) => z.number().min(min).max(max).nullish();
const seedSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullish();

export const ChatBodySchema = z.object({
  model: z.string().min(1).max(256),
  messages: z.array(message).min(1),
  temperature: optNum(0, 2),
  top_p: optNum(0, 1),
  max_tokens: z.number().int().min(1).nullish(),
  max_completion_tokens: z.number().int().min(1).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  random_seed: seedSchema,
  seed: seedSchema,
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
  safe_prompt: z.boolean().nullish(),
  n: z.number().int().nullish(),
  presence_penalty: optNum(-2, 2),
  frequency_penalty: optNum(-2, 2),
  response_format: z
    .object({
      type: z.string(),
      // OpenAI's and Mistral's SDKs both send {name, schema, strict, description?} here.
      json_schema: z
        .object({ name: z.string().max(256).nullish(), schema: z.unknown(), strict: z.boolean().nullish() })
        .nullish(),
    })
    .nullish(),
  // Shapes here; tools/definitions.ts checks the rest (unique names, compilable parameters, limits).
  tools: ToolsFieldSchema.nullish(),
  tool_choice: ToolChoiceFieldSchema.nullish(),
  parallel_tool_calls: ParallelToolCallsFieldSchema.nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
});

export interface ChatParams {
  model: string;
  messages: ChatMessage[];
  temperature: number;
  topP: number;
  /** The caller's limit, before clamping to the context window. */
  maxTokens: number | null;
  stream: boolean;
  includeUsage: boolean;
  seed: number | undefined;
  stop: string[];
  /** Structured output, forwarded to the backend (which masks every token the format refuses). */
  responseFormat: ResponseFormat | null;
  /** Per-token logprobs with this many alternatives; null when not requested. */
  topLogprobs: number | null;
  /** Tool calling: what the prompt, the backend and the parser do; null without tools. */
  tools: ToolPlan | null;
}

/** Added as a system message in json_object mode when no message mentions JSON (as other APIs do). */
export const JSON_MODE_HINT = "Answer with a single JSON object.";

const unsupported = (param: string, message: string) => badRequest(message, param, "unsupported_parameter");

/** A ToolsError as the 400 a client reads. */
export const toolsRefused = (e: ToolsError): ApiError => badRequest(e.message, e.param, e.code);

/** Runs tool validation, turning its refusals into 400s. */
export function withTools<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw e instanceof ToolsError ? toolsRefused(e) : e;
  }
}

function messageText(c: string | unknown[] | null | undefined, param: string, optional = false): string {
  if ((c === null || c === undefined) && optional) return "";
  if (c === null || c === undefined) throw badRequest("Message content is required.", param);
  if (typeof c === "string") return c;
  let text = "";
  c.forEach((part, i) => {
    const p = textPart.safeParse(part);
    if (!p.success)
      throw unsupported(`${param}[${i}]`, 'Only text content parts ({"type": "text", "text": ...}) are supported.');
    text += p.data.text;
  });
  return text;
}

function toMessages(raw: z.infer<typeof message>[]): ChatMessage[] {
  const messages = raw.map((m, i) => {
    const param = `messages[${i}]`;
    // OpenAI's "developer" role is its new name for "system".
    const role = m.role === "developer" ? "system" : m.role;
    if (role !== "system" && role !== "user" && role !== "assistant" && role !== "tool") {
      throw badRequest(
        `Invalid role '${m.role.slice(0, 32)}': expected system, user, assistant or tool.`,
        `${param}.role`,
      );
    }
    const toolCalls =
      role === "assistant" && m.tool_calls != null
        ? withTools(() => historyCalls(m.tool_calls, `${param}.tool_calls`))
        : [];
    // An assistant message that only calls tools has empty or null content (both SDKs send either).
    const msg: ChatMessage = { role, content: messageText(m.content, `${param}.content`, toolCalls.length > 0) };
    if (toolCalls.length > 0) msg.toolCalls = toolCalls;
    if (role === "tool" && m.tool_call_id != null) msg.toolCallId = m.tool_call_id;
    if (m.prefix) msg.prefix = true;
    return msg;
  });
  const history: HistoryMessage[] = messages.map((m, i) => ({ ...m, name: raw[i]!.name ?? undefined }));
  withTools(() => checkToolAnswers(history));
  // A Mistral tool message without an id was matched to its call by name.
  history.forEach((h, i) => {
    if (h.toolCallId !== undefined) messages[i]!.toolCallId = h.toolCallId;
  });
  return messages;
}

/** The chat messages schema (roles, text parts), shared by /v1/tokenize. */
export const MessagesSchema = z.array(message).min(1);

/** Validated messages -> template input (developer -> system; tool turns checked; text parts joined). */
export function parseMessages(raw: z.infer<typeof MessagesSchema>): ChatMessage[] {
  return toMessages(raw);
}

export function parseChatBody(body: unknown): ChatParams {
  const b = parseBody(ChatBodySchema, body);
  if (b.n != null && b.n !== 1) throw unsupported("n", "Only n=1 is supported.");
  if (b.presence_penalty) throw unsupported("presence_penalty", "presence_penalty is not supported (only 0).");
  if (b.frequency_penalty) throw unsupported("frequency_penalty", "frequency_penalty is not supported (only 0).");
  const userFormat = parseResponseFormat(b.response_format);
  const toolConfig = withTools(() => parseToolConfig(b.tools, b.tool_choice, b.parallel_tool_calls));
  const tools = toolConfig ? planTools(toolConfig) : null;
  if (tools?.responseFormat && userFormat)
    throw unsupported(
      "response_format",
      "response_format cannot be combined with tools unless tool_choice is 'none': the tool-call grammar decides the output.",
    );
  const responseFormat = tools?.responseFormat ?? userFormat;
  if (b.top_logprobs && !b.logprobs) throw badRequest("top_logprobs requires logprobs: true.", "top_logprobs");

  const stop = b.stop == null ? [] : typeof b.stop === "string" ? [b.stop] : b.stop;
  if (stop.length > MAX_STOP_SEQUENCES)
    throw badRequest(`At most ${MAX_STOP_SEQUENCES} stop sequences are allowed.`, "stop");
  stop.forEach((s, i) => {
    if (s.length === 0 || s.length > MAX_STOP_LENGTH) {
      throw badRequest(
        `Stop sequences must be 1 to ${MAX_STOP_LENGTH} characters.`,
        typeof b.stop === "string" ? "stop" : `stop[${i}]`,
      );
    }
  });

  let messages = toMessages(b.messages);
  if (b.safe_prompt) messages = [{ role: "system", content: SAFE_PROMPT }, ...messages];
  if (userFormat?.type === "json_object" && !messages.some((m) => /json/i.test(m.content))) {
    messages = [{ role: "system", content: JSON_MODE_HINT }, ...messages];
  }

  // top_p -> 0 is the greedy limit; the backend requires top_p > 0.
  const greedy = b.top_p === 0;
  return {
    model: b.model,
    messages,
    temperature: greedy ? 0 : (b.temperature ?? DEFAULT_TEMPERATURE),
    topP: greedy ? 1 : (b.top_p ?? 1),
    maxTokens: b.max_tokens ?? b.max_completion_tokens ?? null,
    stream: b.stream ?? false,
    includeUsage: b.stream_options?.include_usage ?? false,
    seed: b.random_seed ?? b.seed ?? undefined,
    stop,
    responseFormat,
    topLogprobs: b.logprobs ? (b.top_logprobs ?? 0) : null,
    tools,
  };
}

/** text -> null; json_object; json_schema with a schema the backend can enforce (else a 400 naming the keyword). */
function parseResponseFormat(rf: z.infer<typeof ChatBodySchema>["response_format"]): ResponseFormat | null {
  if (!rf || rf.type === "text") return null;
  if (rf.type === "json_object") return { type: "json_object" };
  if (rf.type !== "json_schema") {
    throw badRequest(
      `response_format type '${rf.type.slice(0, 32)}' is not supported: use text, json_object or json_schema.`,
      "response_format.type",
    );
  }
  if (!rf.json_schema || rf.json_schema.schema === undefined) {
    throw badRequest("response_format json_schema needs json_schema.schema.", "response_format.json_schema");
  }
  try {
    compileSchema(rf.json_schema.schema);
  } catch (e) {
    if (e instanceof SchemaError) throw unsupported("response_format.json_schema.schema", e.message);
    throw e;
  }
  return { type: "json_schema", schema: rf.json_schema.schema };
}

export function contextExceeded(contextWindow: number, promptTokens: number): ApiError {
  return new ApiError(
    400,
    `This model's maximum context length is ${contextWindow} tokens. However, your messages resulted in ${promptTokens} tokens, which leaves no room for a completion.`,
    "invalid_request_error",
    "context_length_exceeded",
    "messages",
  );
}
