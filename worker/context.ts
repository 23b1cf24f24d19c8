/** Typed Hono context variables set by middleware (Hono's typed context). */
import type { Account } from "./billing/types";

export interface AppVariables {
  requestId: string;
  /** Set by the auth middleware on /v1/* routes. */
  account: Account;
}
