// Types `env` from "cloudflare:test" as the worker's Env plus test-only bindings.
type WorkerEnv = import("../../worker/env").Env;
type TestD1Migration = import("@cloudflare/vitest-pool-workers").D1Migration;
declare namespace Cloudflare {
  interface Env extends WorkerEnv {
    TEST_MIGRATIONS: TestD1Migration[];
  }
}
