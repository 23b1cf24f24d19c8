import { defineConfig } from "vitest/config";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";

// Two projects: "workers" runs inside the Workers runtime (miniflare: D1, DOs, KV, Queues, Cache API);
// "node" runs everything else (model builder, ONNX Runtime, backend processes, end-to-end via unstable_startWorker).
export default defineConfig({
  test: {
    // The worker logs one JSON line per request; shown for failing tests only, or all with LOG_REQUESTS=1.
    reporters: process.env.LOG_REQUESTS === "1" ? ["default"] : ["./test/quiet-reporter.ts"],
    projects: [
      {
        plugins: [
          cloudflareTest(async () => ({
            main: "./worker/index.ts",
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                TEST_MIGRATIONS: await readD1Migrations("./worker/migrations"),
                ADMIN_TOKEN: "test-admin-token-0123456789abcdef",
                BACKEND_TOKEN: "test-backend-token-0123456789abcdef",
                USAGE_TOKEN: "test-usage-token-0123456789abcdef",
                CACHE_KEY_SECRET: "test-cache-key-secret-0123456789abcdef",
              },
            },
          })),
        ],
        test: {
          name: "workers",
          include: ["test/workers/**/*.test.ts"],
          setupFiles: ["./test/workers/setup.ts"],
        },
      },
      {
        test: {
          name: "node",
          include: ["test/node/**/*.test.ts"],
          environment: "node",
          globalSetup: ["./test/node/global-setup.ts"],
          testTimeout: 120_000,
          hookTimeout: 300_000,
          // ONNX Runtime and backend processes are CPU-heavy: don't oversubscribe 2 cores.
          fileParallelism: false,
        },
      },
    ],
  },
});
