/**
 * A parsed chat request made ready for the completion owner: its tier (known, in the key's plan, a chat
 * model), the prompt's ids (the chat template with any tool definitions, salted per account) and the completion's token limit
 * (the caller's, clamped to the context left). Shared by every caller of completion/chat.ts.
 */
import { assertTierAllowed } from "../billing/meter";
import type { Account } from "../billing/types";
import type { Env } from "../env";
import { badRequest } from "../errors";
import { getTiers, modelNotFound, type Tier } from "../config/tiers";
import { type ChatParams, contextExceeded } from "./chat-request";
import { chatPromptIds } from "./template";

export interface PreparedChat {
  tier: Tier;
  promptIds: number[];
  maxTokens: number;
}

export function chatTier(env: Env, account: Account, model: string): Tier {
  const tier = getTiers(env.TIERS).get(model);
  if (!tier) throw modelNotFound(model);
  assertTierAllowed(account, model);
  if (tier.kind !== "chat")
    throw badRequest(`The model '${model}' does not support chat completions.`, "model", "invalid_model");
  return tier;
}

/** 400/404 (and the isolate's 429 repeat) for a request that cannot run; never touches a replica. */
export function prepareChat(env: Env, account: Account, p: ChatParams): PreparedChat {
  const tier = chatTier(env, account, p.model);
  const promptIds = chatPromptIds(p.messages, account.cacheSalt, p.tools);
  if (promptIds.length >= tier.contextWindow) throw contextExceeded(tier.contextWindow, promptIds.length);
  const room = tier.contextWindow - promptIds.length;
  return { tier, promptIds, maxTokens: Math.min(p.maxTokens ?? room, room) };
}
