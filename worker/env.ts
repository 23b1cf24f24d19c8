/** Bindings and vars of the worker (wrangler.toml). Secrets: BACKEND_TOKEN, ADMIN_TOKEN, CACHE_KEY_SECRET. */
export interface Env {
  DB: D1Database;
  KEY_LIMITER: DurableObjectNamespace;
  KV: KVNamespace;
  USAGE_QUEUE: Queue;
  /** JSON: Record<model name, TierConfig> (see worker/inference/tiers.ts). */
  TIERS: string;
  BACKEND_TOKEN?: string;
  ADMIN_TOKEN?: string;
  /** HMAC key of response-cache entries (32+ characters); unset = no response caching. */
  CACHE_KEY_SECRET?: string;
  /** "1" logs prompts in request logs (off by default). */
  LOG_PROMPTS?: string;
}
