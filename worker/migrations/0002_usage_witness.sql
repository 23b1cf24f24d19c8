-- The backend's usage report is a second witness, merged into the same one row per request id
-- (worker/usage/merge.ts). SQLite cannot alter a CHECK constraint, so the table is rebuilt to allow the
-- status 'recovered' (a request billed from the backend's report alone: its worker never settled).
CREATE TABLE usage_records_v2 (
  request_id TEXT PRIMARY KEY,
  key_id TEXT NOT NULL,
  model TEXT NOT NULL,
  day TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  cached_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  cost_units INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('ok', 'cancelled', 'error', 'rejected', 'cache_hit', 'recovered')),
  started_at INTEGER NOT NULL,
  ended_at INTEGER NOT NULL,
  recorded_at INTEGER NOT NULL,
  -- The part of cost_units billed because the backend counted more than the worker (0: the worker's count stands).
  reconciled_units INTEGER NOT NULL DEFAULT 0,
  -- When the backend's report was first merged (NULL: not yet).
  backend_reported_at INTEGER,
  -- The tier's price at admission (µ€ per million tokens), so a later report is priced as the request was.
  price_input INTEGER,
  price_cached_input INTEGER,
  price_output INTEGER,
  -- Last change (a rebuilding KeyLimiter reloads recently changed rows: worker/billing/limiter-rebuild.ts).
  updated_at INTEGER NOT NULL DEFAULT 0
);
INSERT INTO usage_records_v2
  (request_id, key_id, model, day, prompt_tokens, cached_tokens, completion_tokens, cost_units, status, started_at, ended_at, recorded_at, updated_at)
  SELECT request_id, key_id, model, day, prompt_tokens, cached_tokens, completion_tokens, cost_units, status, started_at, ended_at, recorded_at, recorded_at
  FROM usage_records;
DROP TABLE usage_records;
ALTER TABLE usage_records_v2 RENAME TO usage_records;
CREATE INDEX IF NOT EXISTS usage_key_day ON usage_records (key_id, day);
CREATE INDEX IF NOT EXISTS usage_day ON usage_records (day);
CREATE INDEX IF NOT EXISTS usage_key_updated ON usage_records (key_id, updated_at);
