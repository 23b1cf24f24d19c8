/**
 * The replica registry's write side (contract/registry.ts), for backends only:
 *   POST /internal/registry/heartbeat   ReplicaReport -> {id, heartbeat_ms, expire_ms}  (join and refresh)
 *   POST /internal/registry/deregister  {url, instance} -> {removed}
 * Its own secret, REGISTRY_TOKEN (32+ characters; unset or shorter = the routes do not exist, 404), and
 * the operator's REGISTRY_ALLOWED_URLS (registry/allowlist.ts): a URL outside it gets 403 even with the
 * token, so a leaked token cannot point traffic at a host the operator never listed.
 */
import { bearerAuth } from "hono/bearer-auth";
import { DeregisterSchema, MIN_REGISTRY_TOKEN_LENGTH, ReplicaReportSchema } from "../../contract/registry";
import { readBody } from "../api/body";
import { ApiError, notFound, unauthorized } from "../errors";
import { factory, type AppEnv } from "../factory";
import { tokensEqual } from "../middleware/admin-auth";
import { refusedWith } from "../middleware/auth";
import { parseAllowlist, urlAllowed } from "../registry/allowlist";
import { registryStub } from "../registry/replica-registry";

const byRegistryToken = bearerAuth<AppEnv>({
  verifyToken: (token, c) => tokensEqual(token, c.env.REGISTRY_TOKEN ?? ""),
  ...refusedWith(() => unauthorized("Invalid or missing registry token.")),
});

const notAllowed = () =>
  new ApiError(403, "This replica URL is not in REGISTRY_ALLOWED_URLS.", "permission_error", "url_not_allowed", "url");

export const registryRoutes = factory.createApp();

registryRoutes.use("*", async (c, next) => {
  const token = c.env.REGISTRY_TOKEN;
  if (!token || token.length < MIN_REGISTRY_TOKEN_LENGTH || !registryStub(c.env))
    throw notFound("Unknown endpoint.", "unknown_url");
  return byRegistryToken(c, next);
});

registryRoutes.post("/heartbeat", async (c) => {
  const report = await readBody(c.req.raw, ReplicaReportSchema);
  if (!urlAllowed(report.url, parseAllowlist(c.env.REGISTRY_ALLOWED_URLS))) throw notAllowed();
  return c.json(await registryStub(c.env)!.heartbeat(report));
});

registryRoutes.post("/deregister", async (c) => {
  const { url, instance } = await readBody(c.req.raw, DeregisterSchema);
  return c.json({ removed: await registryStub(c.env)!.deregister(url, instance) });
});
