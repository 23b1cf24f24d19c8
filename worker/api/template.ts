/**
 * The chat template as the API renders it (chat completions, tokenize): the one path that turns a
 * conversation, its tool definitions and its tool choice into the prompt ids that are billed. The
 * tokenizer knows no HTTP: it refuses a conversation with a typed TokenizerError, and this is the one
 * place that becomes the OpenAI/Mistral 400 a client reads (same message; `param` is "messages", the
 * conversation as a whole).
 */
import { type ApiError, badRequest } from "../errors";
import { applyChatTemplate, type ChatMessage, TokenizerError } from "../tokenizer";
import type { ToolPlan } from "../tools";

export const templateRefused = (err: TokenizerError): ApiError => badRequest(err.message, "messages");

/** The prompt's ids (BOS included); `salt` partitions the tokenizer's turn cache per account. */
export function chatPromptIds(messages: readonly ChatMessage[], salt: string, tools: ToolPlan | null = null): number[] {
  try {
    return applyChatTemplate(messages, salt, tools?.template);
  } catch (err) {
    throw err instanceof TokenizerError ? templateRefused(err) : err;
  }
}
