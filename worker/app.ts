/**
 * The Hono app: composes middleware and routes. Request flow:
 *   request id -> (CORS -> auth) -> route handler -> completion -> backend
 * docs/development.md traces one chat request through the folders.
 */
import { HTTPException } from "hono/http-exception";
import { ApiError, internalError, notFound } from "./errors";
import { factory } from "./factory";
import { apiAuth } from "./middleware/auth";
import { apiCors } from "./middleware/cors";
import { requireSoundConfig } from "./middleware/config-guard";
import { rpmFirst } from "./middleware/rpm-first";
import { adminRoutes } from "./routes/admin";
import { usageRoutes } from "./routes/usage";
import { chatRoutes } from "./routes/chat";
import { embeddingsRoutes } from "./routes/embeddings";
import { modelsRoutes } from "./routes/models";
import { keyRoutes } from "./routes/key";
import { tokenizeRoutes } from "./routes/tokenize";
import { consoleRoutes } from "./console/routes";
import { backendReportRoutes } from "./routes/backend-reports";
import { openApiRoutes } from "./routes/openapi";
import { unsupportedRoutes } from "./routes/unsupported";
import { faultRoutes } from "./dev/fault-routes";
import { registryRoutes } from "./routes/registry";
import { ensureLiveReplicas } from "./serving/live-replicas";
import type { Health } from "../contract/api-common";
import { WORKER_PATHS } from "../contract/routes";
import { batchLineOf } from "./batch/line-request";
import { filesRoutes } from "./routes/files";
import { batchesRoutes } from "./routes/batches";
import { batchJobsRoutes } from "./routes/batch-jobs";

export function createApp() {
  const app = factory.createApp();

  // A short secret refuses every request with a clear config error (config.ts), before anything else.
  app.use("*", requireSoundConfig);
  app.use("*", async (c, next) => {
    // Always server-generated: the id keys the usage ledger (one billed record per id), so a
    // client-chosen x-request-id could make repeated requests collapse into one record.
    // A batch line (made in this isolate by the queue consumer) brings its own: one ledger id per line.
    const line = batchLineOf(c.req.raw);
    const requestId = line?.requestId ?? `req_${crypto.randomUUID().replaceAll("-", "")}`;
    c.set("requestId", requestId);
    if (line) {
      c.set("account", line.account);
      c.set("batch", { batchId: line.batchId, line: line.line });
    }
    await next();
    c.header("x-request-id", requestId);
  });

  app.get(WORKER_PATHS.health, (c) => c.json({ status: "ok" } satisfies Health));
  // The public API's OpenAPI 3.1 document (no key: it is the API's documentation).
  app.route("/", openApiRoutes);
  app.route("/console", consoleRoutes);
  // The backend's usage reports (its own USAGE_TOKEN; 404 while unset).
  app.route(WORKER_PATHS.usage, backendReportRoutes);
  // Backends joining, heartbeating and leaving (REGISTRY_TOKEN; 404 while unset).
  app.route("/internal/registry", registryRoutes);
  // Fault injection for the local soak: a 404 unless FAULTS=1 (never in wrangler.toml; billing/faults.ts).
  app.route("/internal/faults", faultRoutes);

  // API-key auth on every /v1/* route except /v1/admin/* (ADMIN_TOKEN there); sets c.var.account.
  // CORS first: a preflight carries no key (off unless CORS_ORIGINS is set; middleware/cors.ts).
  app.use("/v1/*", apiCors);
  // A batch line (made in this isolate by the queue consumer) carries its account already.
  app.use("/v1/*", (c, next) => (c.get("batch") ? next() : apiAuth(c, next)));
  // Limits before work: RPM counted before the body is parsed or tokenized (middleware/rpm-first.ts).
  app.use("/v1/chat/completions", rpmFirst({ metered: true }));
  app.use("/v1/embeddings", rpmFirst({ metered: true }));
  app.use("/v1/tokenize", rpmFirst({ metered: false }));
  app.use("/v1/detokenize", rpmFirst({ metered: false }));
  // The live replica set for routing: at most one registry read per isolate per LIVE_TTL_MS (serving/live-replicas.ts).
  app.use("/v1/*", async (c, next) => {
    await ensureLiveReplicas(c.env, (p) => c.executionCtx.waitUntil(p));
    await next();
  });
  app.route("/v1/admin", adminRoutes);
  app.route("/v1/usage", usageRoutes);
  app.route("/v1", keyRoutes);
  app.route("/v1", tokenizeRoutes);
  app.route("/v1", chatRoutes);
  app.route("/v1", embeddingsRoutes);
  app.route("/v1", modelsRoutes);
  app.route("/v1", filesRoutes);
  app.route("/v1", batchesRoutes);
  app.route("/v1", batchJobsRoutes);
  // Known OpenAI/Mistral endpoints this API does not serve: 404 not_supported (after every real route).
  app.route("/v1", unsupportedRoutes);

  app.notFound(() => {
    throw notFound("Unknown endpoint.", "unknown_url");
  });

  app.onError((err, c) => {
    // Middleware built on Hono's (bearerAuth) throws HTTPException carrying its response, already in
    // the OpenAI error shape (middleware/auth.ts).
    if (err instanceof HTTPException) {
      const res = err.getResponse();
      res.headers.set("x-request-id", c.get("requestId") ?? "");
      return res;
    }
    const apiError = err instanceof ApiError ? err : internalError();
    if (!(err instanceof ApiError))
      console.error(JSON.stringify({ level: "error", request_id: c.get("requestId"), error: String(err) }));
    const res = c.json(apiError.body(), apiError.status as 400);
    for (const [k, v] of Object.entries(apiError.headers)) res.headers.set(k, v);
    res.headers.set("x-request-id", c.get("requestId") ?? "");
    return res;
  });

  return app;
}
