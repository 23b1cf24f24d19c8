/**
 * POST /internal/usage: the backend's usage reports (contract/usage.ts), merged into the ledger
 * (worker/billing/report-merge.ts) and acknowledged by record id once committed. Its own token, USAGE_TOKEN
 * (never an API key or BACKEND_TOKEN); with USAGE_TOKEN unset the route does not exist (404).
 */
import { bearerAuth } from "hono/bearer-auth";
import { UsageBatchSchema, type UsageAck } from "../../contract/usage";
import { readBody } from "../api/body";
import { notFound, unauthorized } from "../errors";
import { factory, type AppEnv } from "../factory";
import { refusedWith } from "../middleware/auth";
import { clientOf, throttled } from "../middleware/auth-throttle";
import { tokensEqual } from "../middleware/admin-auth";
import { mergeReports, stubPort } from "../billing/report-merge";

const byUsageToken = bearerAuth<AppEnv>({
  verifyToken: (token, c) => tokensEqual(token, c.env.USAGE_TOKEN ?? ""),
  ...refusedWith(() => unauthorized("Invalid or missing usage token.")),
});

export const internalUsageRoutes = factory.createApp();

internalUsageRoutes.use("*", async (c, next) => {
  if (!c.env.USAGE_TOKEN) throw notFound("Unknown endpoint.", "unknown_url");
  // Failed attempts throttled per client like the admin API's, in the usage token's own bucket.
  return throttled("usage", clientOf(c.req.header("cf-connecting-ip")), () => byUsageToken(c, next));
});

internalUsageRoutes.post("/", async (c) => {
  const batch = await readBody(c.req.raw, UsageBatchSchema);
  const acked = await mergeReports(c.env, batch.records, stubPort(c.env));
  return c.json<UsageAck>({ acked });
});
