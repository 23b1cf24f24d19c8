/** GET /v1/models and /v1/models/:id: the tiers this caller's key may use. */
import type { Context } from "hono";
import type { ModelList } from "../../contract/api-chat";
import { card } from "../api/model-card";
import { getTiers, modelNotFound, type Tier } from "../config/tiers";
import { factory, type AppEnv } from "../factory";

export const modelsRoutes = factory.createApp();

function visible(c: Context<AppEnv>): Tier[] {
  const allowed = new Set(c.get("account").tiers);
  return [...getTiers(c.env.TIERS).values()].filter((t) => allowed.has(t.name));
}

modelsRoutes.get("/models", (c) => c.json({ object: "list", data: visible(c).map(card) } satisfies ModelList));

modelsRoutes.get("/models/:id{.+}", (c) => {
  const id = c.req.param("id");
  const tier = visible(c).find((t) => t.name === id);
  if (!tier) throw modelNotFound(id);
  return c.json(card(tier));
});
