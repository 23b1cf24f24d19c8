// Test-only bindings on `env` from "cloudflare:test" (typed as Cloudflare.Env: wrangler.toml's bindings,
// generated into worker/worker-configuration.d.ts, plus the secrets declared in worker/env.ts).
declare namespace Cloudflare {
  interface Env {
    TEST_MIGRATIONS: import("@cloudflare/vitest-pool-workers").D1Migration[];
  }
}
