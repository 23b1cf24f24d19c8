/**
 * POST /v1/tokenize and POST /v1/detokenize, in vLLM's shapes (vllm/entrypoints/openai/serving_tokenization.py):
 *   {"model", "prompt"}   -> {"count", "max_model_len", "tokens"}  the text's ids, no BOS
 *   {"model", "messages"} -> the same, through the chat template, BOS included (exactly what chat sends;
 *                            `tools`, `tool_choice` and `parallel_tool_calls` as chat takes them)
 *   {"model", "tokens"}   -> {"prompt"}                            the text; control ids (BOS, EOS) add nothing
 * Authenticated like every /v1 route, unmetered (no reservation, no ledger record), and counted against the
 * key's RPM for the model's tier, so they cannot be used to flood the edge for free.
 */
import type { Context } from "hono";
import { z } from "zod";
import type { Detokenized, Tokenized } from "../../contract/api-chat";
import { factory, type AppEnv } from "../factory";
import { assertTierAllowed } from "../billing/meter";
import { badRequest } from "../errors";
import { readBody } from "../api/body";
import { MessagesSchema, parseMessages, withTools } from "../api/chat-request";
import { chatPromptIds } from "../api/template";
import { getTiers, modelNotFound, type Tier } from "../config/tiers";
import { VOCAB_SIZE, decode, encode } from "../tokenizer";
import {
  ParallelToolCallsFieldSchema,
  parseToolConfig,
  planTools,
  ToolChoiceFieldSchema,
  ToolsFieldSchema,
} from "../tools";

export const tokenizeRoutes = factory.createApp();

/** Longest id list /v1/detokenize takes (eight times the largest context a tier has today). */
export const MAX_DETOKENIZE_TOKENS = 262_144;

const model = z.string().min(1).max(256);
export const TokenizeSchema = z.object({
  model,
  prompt: z.string().nullish(),
  messages: MessagesSchema.nullish(),
  // As in chat completions: the same definitions and choice give the same ids chat bills.
  tools: ToolsFieldSchema.nullish(),
  tool_choice: ToolChoiceFieldSchema.nullish(),
  parallel_tool_calls: ParallelToolCallsFieldSchema.nullish(),
});
export const DetokenizeSchema = z.object({
  model,
  tokens: z
    .array(
      z
        .number()
        .int()
        .min(0)
        .max(VOCAB_SIZE - 1),
    )
    .max(MAX_DETOKENIZE_TOKENS),
});

/**
 * The tier, checked like chat's: 404 for an unknown model or one outside the key's plan. Its one request
 * of RPM was counted before the body was read (middleware/rpm-first.ts), which also sets x-ratelimit-*.
 */
function tierOf(c: Context<AppEnv>, name: string): Tier {
  const tier = getTiers(c.env.TIERS).get(name);
  if (!tier) throw modelNotFound(name);
  assertTierAllowed(c.get("account"), name);
  return tier;
}

tokenizeRoutes.post("/tokenize", async (c) => {
  const body = await readBody(c.req.raw, TokenizeSchema);
  const hasPrompt = body.prompt != null;
  const hasMessages = body.messages != null;
  if (hasPrompt === hasMessages)
    throw badRequest("Send exactly one of 'prompt' or 'messages'.", hasPrompt ? "messages" : "prompt");
  const config = withTools(() => parseToolConfig(body.tools, body.tool_choice, body.parallel_tool_calls));
  if (config && !hasMessages) throw badRequest("tools need 'messages': a prompt has no chat template.", "tools");
  const tier = tierOf(c, body.model);
  const tokens = hasMessages
    ? chatPromptIds(parseMessages(body.messages!), c.get("account").cacheSalt, config ? planTools(config) : null)
    : encode(body.prompt!);
  return c.json({ count: tokens.length, max_model_len: tier.contextWindow, tokens } satisfies Tokenized);
});

tokenizeRoutes.post("/detokenize", async (c) => {
  const body = await readBody(c.req.raw, DetokenizeSchema);
  tierOf(c, body.model);
  return c.json({ prompt: decode(body.tokens) } satisfies Detokenized);
});
