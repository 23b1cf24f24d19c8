/** A tier as a model card (GET /v1/models), in the shape contract/api-chat.ts declares. */
import type { Model } from "../../contract/api-chat";
import type { Tier } from "../config/tiers";

/** Fixed creation time (the 2023 tiers); clients only display it. */
const CREATED = 1702252800;

export function card(t: Tier): Model {
  return {
    id: t.name,
    object: "model",
    created: CREATED,
    owned_by: "moe-edge",
    // Mistral's SDK discriminates model cards on `type` ("base" | "fine-tuned") and reads capabilities.
    type: "base",
    capabilities: {
      completion_chat: t.kind !== "embedding",
      function_calling: false,
      completion_fim: false,
      fine_tuning: false,
      vision: false,
    },
    // Mistral names it max_context_length; OpenAI-style clients read context_length.
    max_context_length: t.contextWindow,
    context_length: t.contextWindow,
  };
}
