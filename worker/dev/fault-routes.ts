/**
 * /internal/faults (billing/faults.ts): arms the fault hooks of a local stack. A 404 unless the FAULTS var is
 * "1"; then ADMIN_TOKEN as for /v1/admin/*.
 *   GET  /internal/faults           -> { d1: { failing_ms, refused_writes } }
 *   POST /internal/faults/d1 {"fail_ms": N} -> ledger writes fail for N ms (at most 10 minutes)
 *   POST /internal/faults/registry-reset  -> the replica registry forgets every replica (as a lost Durable
 *                                            Object would); heartbeats rebuild it
 */
import { z } from "zod";
import { readBody } from "../api/body";
import { notFound } from "../errors";
import { factory } from "../factory";
import { requireAdmin } from "../middleware/admin-auth";
import { failD1Writes, faultStatus } from "../billing/faults";
import { registryStub } from "../registry/replica-registry";

export const faultRoutes = factory.createApp();

faultRoutes.use("*", async (c, next) => {
  if (c.env.FAULTS !== "1") throw notFound("Unknown endpoint.", "unknown_url");
  return requireAdmin(c, next);
});

faultRoutes.get("/", (c) => c.json(faultStatus()));

const D1FaultSchema = z.object({ fail_ms: z.number().int().min(0).max(600_000) });

faultRoutes.post("/d1", async (c) => {
  const { fail_ms } = await readBody(c.req.raw, D1FaultSchema);
  failD1Writes(fail_ms);
  return c.json(faultStatus());
});

faultRoutes.post("/registry-reset", async (c) => {
  await registryStub(c.env)?.reset();
  return c.json({ reset: true });
});
