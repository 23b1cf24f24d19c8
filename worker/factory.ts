/**
 * The worker's Hono environment, declared once (Hono's createFactory): bindings, and the variables
 * middleware sets. Routes and middleware are made from `factory`, so no module imports the app for its
 * types and every file's imports read top-down (app.ts -> routes -> api/serving/billing -> factory).
 */
import { createFactory } from "hono/factory";
import type { Account } from "./billing/types";
import type { Env } from "./env";

export interface AppVariables {
  requestId: string;
  /** Set by the auth middleware on /v1/* routes. */
  account: Account;
  /** Set only on a batch line's request (worker/batch/line-request.ts): billed at the batch price, priority "batch". */
  batch?: { batchId: string; line: number };
}

export type AppEnv = { Bindings: Env; Variables: AppVariables };

export const factory = createFactory<AppEnv>();
