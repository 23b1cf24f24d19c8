-- Keys and the usage ledger (see worker/billing). Money columns hold exact integers in units of
-- 1e-12 EUR (= 1e-6 micro-euro): tokens x integer price per million tokens.

-- API keys: only the SHA-256 of the key is stored; the key itself is shown once at creation.
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY,
  key_hash TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  tiers TEXT NOT NULL,                 -- JSON array of public model names
  rpm INTEGER NOT NULL,
  tpm INTEGER NOT NULL,
  monthly_budget_micros INTEGER NOT NULL,
  cache_salt TEXT NOT NULL,            -- random per key, never derived from the key
  created_at INTEGER NOT NULL,         -- ms since epoch
  updated_at INTEGER NOT NULL,
  revoked_at INTEGER
);

-- Exactly one row per request (request_id is the primary key; writers use INSERT OR IGNORE).
CREATE TABLE IF NOT EXISTS usage_records (
  request_id TEXT PRIMARY KEY,
  key_id TEXT NOT NULL,
  model TEXT NOT NULL,
  day TEXT NOT NULL,                   -- UTC YYYY-MM-DD of started_at
  prompt_tokens INTEGER NOT NULL,
  cached_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  cost_units INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('ok', 'cancelled', 'error', 'rejected', 'cache_hit')),
  started_at INTEGER NOT NULL,
  ended_at INTEGER NOT NULL,
  recorded_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_key_day ON usage_records (key_id, day);
CREATE INDEX IF NOT EXISTS usage_day ON usage_records (day);
