/**
 * POST /v1/tokenize and POST /v1/detokenize, in vLLM's shapes (vllm/entrypoints/openai/serving_tokenization.py):
 *   {"model", "prompt"}   -> {"count", "max_model_len", "tokens"}  the text's ids, no BOS
 *   {"model", "messages"} -> the same, through the chat template, BOS included (exactly what chat sends)
 *   {"model", "tokens"}   -> {"prompt"}                            the text; control ids (BOS, EOS) add nothing
 * Authenticated like every /v1 route, unmetered (no reservation, no ledger record), and counted against the
 * key's RPM for the model's tier, so they cannot be used to flood the edge for free.
 */
import type { Context } from "hono";
import { z } from "zod";
import { factory, type AppEnv } from "../factory";
import { assertTierAllowed, countRequest } from "../billing/meter";
import { badRequest } from "../errors";
import { readBody } from "../api/body";
import { MessagesSchema, parseMessages } from "../api/chat-request";
import { chatPromptIds } from "../api/template";
import { getTiers, modelNotFound, type Tier } from "../config/tiers";
import { VOCAB_SIZE, decode, encode } from "../tokenizer";

export const tokenizeRoutes = factory.createApp();

/** Longest id list /v1/detokenize takes (eight times the largest context a tier has today). */
export const MAX_DETOKENIZE_TOKENS = 262_144;

const model = z.string().min(1).max(256);
export const TokenizeSchema = z.object({ model, prompt: z.string().nullish(), messages: MessagesSchema.nullish() });
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

/** The tier, checked like chat's: 404 for an unknown model or one outside the key's plan; then one request of RPM. */
async function admitUnmetered(
  c: Context<AppEnv>,
  name: string,
): Promise<{ tier: Tier; headers: Record<string, string> }> {
  const tier = getTiers(c.env.TIERS).get(name);
  if (!tier) throw modelNotFound(name);
  assertTierAllowed(c.get("account"), name);
  return { tier, headers: await countRequest(c.env, c.get("account"), name) };
}

tokenizeRoutes.post("/tokenize", async (c) => {
  const body = await readBody(c.req.raw, TokenizeSchema);
  const hasPrompt = body.prompt != null;
  const hasMessages = body.messages != null;
  if (hasPrompt === hasMessages)
    throw badRequest("Send exactly one of 'prompt' or 'messages'.", hasPrompt ? "messages" : "prompt");
  const { tier, headers } = await admitUnmetered(c, body.model);
  const tokens = hasMessages
    ? chatPromptIds(parseMessages(body.messages!), c.get("account").cacheSalt)
    : encode(body.prompt!);
  return c.json({ count: tokens.length, max_model_len: tier.contextWindow, tokens }, 200, headers);
});

tokenizeRoutes.post("/detokenize", async (c) => {
  const body = await readBody(c.req.raw, DetokenizeSchema);
  const { headers } = await admitUnmetered(c, body.model);
  return c.json({ prompt: decode(body.tokens) }, 200, headers);
});
