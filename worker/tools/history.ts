/**
 * Tool turns in a conversation's history: an assistant message's `tool_calls` and `role: "tool"`
 * results. Both SDKs' shapes are accepted: OpenAI's (`arguments` a JSON string, ids `call_...`) and
 * Mistral's (`arguments` a string or an object, 9-character ids, the function `name` on tool messages).
 * A result must answer a call made earlier in the conversation.
 */
import { z } from "zod";
import type { TemplateToolCall } from "../tokenizer";
import { ToolsError } from "./errors";

/** Longest id taken: both SDKs' ids are far shorter; a bound keeps the prompt's cost predictable. */
export const MAX_CALL_ID_CHARS = 256;

/** An assistant message's tool call (both SDKs' shapes). */
export const HistoryCallSchema = z.object({
  id: z.string().min(1).max(MAX_CALL_ID_CHARS),
  type: z.literal("function").nullish(),
  function: z.object({
    name: z.string().min(1).max(256),
    arguments: z.union([z.string(), z.record(z.string(), z.unknown())]).nullish(),
  }),
});

/** `tool_calls` of the assistant message at `param` -> the calls the template renders. */
export function historyCalls(raw: unknown, param: string): TemplateToolCall[] {
  const list = z.array(z.unknown()).safeParse(raw);
  if (!list.success) throw new ToolsError(param, `${param} must be a list of tool calls.`);
  return list.data.map((item, j) => {
    const at = `${param}[${j}]`;
    const r = HistoryCallSchema.safeParse(item);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      const path = at + issue.path.map((k) => (typeof k === "number" ? `[${k}]` : `.${String(k)}`)).join("");
      throw new ToolsError(path, `Invalid ${path}: ${issue.message}`);
    }
    const { id, function: fn } = r.data;
    let args: unknown = fn.arguments ?? {};
    if (typeof args === "string") {
      try {
        args = args.trim() === "" ? {} : JSON.parse(args);
      } catch {
        throw new ToolsError(`${at}.function.arguments`, `${at}.function.arguments is not valid JSON.`);
      }
    }
    return { id, name: fn.name, arguments: args };
  });
}

/** What the answer check needs of a message. */
export interface HistoryMessage {
  role: string;
  toolCalls?: readonly TemplateToolCall[];
  toolCallId?: string;
  /** Mistral's tool messages name the function. */
  name?: string;
}

/**
 * Every tool message answers a call made by an earlier assistant message. A tool message without an id
 * is matched by its `name` when exactly one earlier call has that name (Mistral's SDK makes the id
 * optional); the id found is written back onto the message.
 */
export function checkToolAnswers(messages: HistoryMessage[]): void {
  const calls = new Map<string, string>();
  messages.forEach((m, i) => {
    for (const c of m.toolCalls ?? []) calls.set(c.id, c.name);
    if (m.role !== "tool") return;
    if (m.toolCallId === undefined) {
      const named = [...calls].filter(([, name]) => name === m.name);
      if (m.name === undefined || named.length !== 1)
        throw new ToolsError(`messages[${i}].tool_call_id`, `messages[${i}] (role tool) needs tool_call_id.`);
      m.toolCallId = named[0]![0];
      return;
    }
    if (!calls.has(m.toolCallId))
      throw new ToolsError(
        `messages[${i}].tool_call_id`,
        `messages[${i}].tool_call_id '${m.toolCallId.slice(0, 64)}' answers no earlier tool call.`,
      );
  });
}
