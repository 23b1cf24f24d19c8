import type { Env } from "../../worker/env";

declare global {
  namespace Cloudflare {
    interface Env extends import("../../worker/env").Env {
      TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
    }
  }
}
export type { Env };
