/** Bindings and vars of the worker (wrangler.toml). Secrets: BACKEND_TOKEN, ADMIN_TOKEN, USAGE_TOKEN, CACHE_KEY_SECRET. */
export interface Env {
  DB: D1Database;
  KEY_LIMITER: DurableObjectNamespace;
  KV: KVNamespace;
  USAGE_QUEUE: Queue;
  /** JSON: Record<model name, TierConfig> (see worker/serving/tiers.ts). */
  TIERS: string;
  BACKEND_TOKEN?: string;
  ADMIN_TOKEN?: string;
  /** HMAC key of response-cache entries (32+ characters); unset = no response caching. */
  CACHE_KEY_SECRET?: string;
  /** The backend's usage deliveries (POST /internal/usage); the route is a 404 while unset. */
  USAGE_TOKEN?: string;
  /** Comma-separated origins allowed to call /v1/* from a browser ("*": any); unset = no CORS. */
  CORS_ORIGINS?: string;
  /** "1" logs prompts in request logs (off by default). */
  LOG_PROMPTS?: string;
}
