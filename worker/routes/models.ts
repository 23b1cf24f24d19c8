/** GET /v1/models and /v1/models/:id: the tiers this caller's key may use. */
import type { Context } from "hono";
import { factory, type AppEnv } from "../factory";
import { getTiers, modelNotFound, type Tier } from "../serving/tiers";

export const modelsRoutes = factory.createApp();

/** Fixed creation time (the 2023 tiers); clients only display it. */
const CREATED = 1702252800;

export function card(t: Tier) {
  return {
    id: t.name,
    object: "model" as const,
    created: CREATED,
    owned_by: "moe-edge",
    // Mistral's SDK discriminates model cards on `type` ("base" | "fine-tuned") and reads capabilities.
    type: "base" as const,
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

function visible(c: Context<AppEnv>): Tier[] {
  const allowed = new Set(c.get("account").tiers);
  return [...getTiers(c.env.TIERS).values()].filter((t) => allowed.has(t.name));
}

modelsRoutes.get("/models", (c) => c.json({ object: "list", data: visible(c).map(card) }));

modelsRoutes.get("/models/:id{.+}", (c) => {
  const id = c.req.param("id");
  const tier = visible(c).find((t) => t.name === id);
  if (!tier) throw modelNotFound(id);
  return c.json(card(tier));
});
