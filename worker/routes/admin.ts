/**
 * Admin API (behind ADMIN_TOKEN): keys and usage.
 *   POST   /v1/admin/keys        {name, tiers, rpm?, tpm?, monthly_budget_micros?, key?} -> 201 {id, key, ...plan}
 *   GET    /v1/admin/keys        -> list (never the key or its hash)
 *   GET    /v1/admin/keys/:id
 *   PATCH  /v1/admin/keys/:id    {name?, tiers?, rpm?, tpm?, monthly_budget_micros?}
 *   DELETE /v1/admin/keys/:id    -> revoke (idempotent)
 *   GET    /v1/admin/usage       ?key_id=&from=YYYY-MM-DD&to=YYYY-MM-DD -> per key/tier/day rows
 *   GET    /v1/admin/usage/requests ?key_id=&request_id=&limit=(1..1000, 100) -> per-request records, newest first
 *   GET    /v1/admin/usage/dead-letters          -> {count}: usage records parked by the queue's DLQ
 *   POST   /v1/admin/usage/dead-letters/replay   ?limit=(1..1000, 100) -> {replayed, failed, remaining} (idempotent)
 *   GET    /v1/admin/replicas    -> {data: [{id, url, models, tiers, state, in_flight, queue_depth, kv_free_blocks, slots, served, last_seen, version}]}
 *                                 the registry's live replicas (serving/replica-views.ts); [] without a registry
 *   GET    /v1/admin/usage/rejected-reports      ?limit=(1..1000, 100) -> {count, data}: usage reports refused
 *                                                because their request id was never admitted (billing/report-merge.ts)
 * `key` lets the local dev stack keep one key across restarts; it must match [A-Za-z0-9_-]{32,200}.
 * Creating a key that already exists -> 409 key_exists (message names the existing id).
 */
import { z } from "zod";
import type {
  AdminUsageDays,
  ApiKey,
  ApiKeyList,
  CreatedApiKey,
  DeadLetterReplay,
  DeadLetters,
  DeletedApiKey,
  RejectedUsageReports,
  ReplicaList,
  UsageRequests,
} from "../../contract/api-accounts";
import { readBody } from "../api/body";
import { factory } from "../factory";
import {
  CUSTOM_KEY_RE,
  createKey,
  generateKey,
  getKey,
  KeyExistsError,
  type KeyRow,
  listKeys,
  revokeKey,
  updateKey,
} from "../billing/keys";
import { usageByDay, usageRequests } from "../billing/ledger";
import { countDeadLetters, replayDeadLetters } from "../billing/dead-letters";
import { rejectedReports } from "../billing/rejected-reports";
import type { Env } from "../env";
import { ApiError, badRequest, notFound } from "../errors";
import { requireAdmin } from "../middleware/admin-auth";
import { replicaViews } from "../serving/replica-views";
import { dateRange } from "./usage";

export const DEFAULT_PLAN = { rpm: 60, tpm: 100_000, monthly_budget_micros: 10_000_000 } as const;

const limit = z.number().int().min(1).max(1_000_000_000);
const planFields = {
  name: z.string().trim().min(1).max(200),
  tiers: z.array(z.string().min(1).max(100)).min(1).max(100),
  rpm: limit,
  tpm: limit,
  monthly_budget_micros: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
};
export const createSchema = z.strictObject({
  ...planFields,
  rpm: planFields.rpm.default(DEFAULT_PLAN.rpm),
  tpm: planFields.tpm.default(DEFAULT_PLAN.tpm),
  monthly_budget_micros: planFields.monthly_budget_micros.default(DEFAULT_PLAN.monthly_budget_micros),
  key: z.string().regex(CUSTOM_KEY_RE, "key must be 32-200 characters of [A-Za-z0-9_-]").optional(),
});
export const patchSchema = z.strictObject(planFields).partial();

function knownTiers(env: Env): Set<string> {
  try {
    return new Set(Object.keys(JSON.parse(env.TIERS) as Record<string, unknown>));
  } catch {
    return new Set();
  }
}

function checkTiers(env: Env, tiers: string[] | undefined): void {
  if (!tiers) return;
  const known = knownTiers(env);
  const unknown = tiers.filter((t) => !known.has(t));
  if (unknown.length)
    throw badRequest(`Unknown tier(s): ${unknown.join(", ")}. Known: ${[...known].join(", ")}.`, "tiers");
}

const publicKey = (k: KeyRow): ApiKey => ({ object: "api_key", ...k });

export const adminRoutes = factory.createApp();
adminRoutes.use("*", requireAdmin);

adminRoutes.post("/keys", async (c) => {
  const body = await readBody(c.req.raw, createSchema);
  checkTiers(c.env, body.tiers);
  const key = body.key ?? generateKey();
  const plan = {
    name: body.name,
    tiers: [...new Set(body.tiers)],
    rpm: body.rpm,
    tpm: body.tpm,
    monthly_budget_micros: body.monthly_budget_micros,
  };
  try {
    const row = await createKey(c.env.DB, key, plan);
    return c.json({ ...publicKey(row), key } satisfies CreatedApiKey, 201);
  } catch (err) {
    if (err instanceof KeyExistsError)
      throw new ApiError(
        409,
        `This key already exists (id ${err.existingId}).`,
        "invalid_request_error",
        "key_exists",
        "key",
      );
    throw err;
  }
});

adminRoutes.get("/keys", async (c) =>
  c.json({ object: "list", data: (await listKeys(c.env.DB)).map(publicKey) } satisfies ApiKeyList),
);

adminRoutes.get("/keys/:id", async (c) => {
  const row = await getKey(c.env.DB, c.req.param("id"));
  if (!row) throw notFound("No such key.", "key_not_found");
  return c.json(publicKey(row));
});

adminRoutes.patch("/keys/:id", async (c) => {
  const patch = await readBody(c.req.raw, patchSchema);
  checkTiers(c.env, patch.tiers);
  if (patch.tiers) patch.tiers = [...new Set(patch.tiers)];
  const row = await updateKey(c.env.DB, c.req.param("id"), patch);
  if (!row) throw notFound("No such key.", "key_not_found");
  return c.json(publicKey(row));
});

adminRoutes.delete("/keys/:id", async (c) => {
  const row = await revokeKey(c.env.DB, c.req.param("id"));
  if (!row) throw notFound("No such key.", "key_not_found");
  return c.json({ ...publicKey(row), deleted: true } satisfies DeletedApiKey);
});

adminRoutes.get("/usage", async (c) => {
  const { from, to } = dateRange(c.req.query("from"), c.req.query("to"), false);
  const keyId = c.req.query("key_id") || undefined;
  return c.json({ object: "list", data: await usageByDay(c.env.DB, { keyId, from, to }) } satisfies AdminUsageDays);
});

adminRoutes.get("/usage/requests", async (c) => {
  const limitRaw = c.req.query("limit");
  const limit = limitRaw === undefined ? 100 : Number(limitRaw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    throw badRequest("limit must be an integer from 1 to 1000.", "limit");
  const keyId = c.req.query("key_id") || undefined;
  const requestId = c.req.query("request_id") || undefined;
  return c.json({
    object: "list",
    data: await usageRequests(c.env.DB, { keyId, requestId, limit }),
  } satisfies UsageRequests);
});

adminRoutes.get("/usage/dead-letters", async (c) =>
  c.json({ object: "dead_letters", count: await countDeadLetters(c.env) } satisfies DeadLetters),
);

adminRoutes.get("/usage/rejected-reports", async (c) => {
  const limitRaw = c.req.query("limit");
  const limit = limitRaw === undefined ? 100 : Number(limitRaw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    throw badRequest("limit must be an integer from 1 to 1000.", "limit");
  return c.json({
    object: "rejected_usage_reports",
    ...(await rejectedReports(c.env.DB, limit)),
  } satisfies RejectedUsageReports);
});

adminRoutes.post("/usage/dead-letters/replay", async (c) => {
  const limitRaw = c.req.query("limit");
  const limit = limitRaw === undefined ? 100 : Number(limitRaw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    throw badRequest("limit must be an integer from 1 to 1000.", "limit");
  return c.json({
    object: "dead_letter_replay",
    ...(await replayDeadLetters(c.env, limit)),
  } satisfies DeadLetterReplay);
});

adminRoutes.get("/replicas", async (c) => c.json({ data: await replicaViews(c.env) } satisfies ReplicaList));
