/** Bindings and vars of the worker (wrangler.toml). Secrets: BACKEND_TOKEN, ADMIN_TOKEN. */
export interface Env {
  DB: D1Database;
  KEY_LIMITER: DurableObjectNamespace;
  KV: KVNamespace;
  USAGE_QUEUE: Queue;
  /** JSON: Record<model name, TierConfig> (see worker/inference/tiers.ts). */
  TIERS: string;
  BACKEND_TOKEN?: string;
  ADMIN_TOKEN?: string;
  /** "1" logs prompts in request logs (off by default). */
  LOG_PROMPTS?: string;
}
