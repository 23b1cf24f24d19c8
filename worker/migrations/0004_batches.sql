-- The Batch API (worker/batch/): uploaded files (their bytes live in R2), batches, and one row per
-- finished batch line. Times are ms since epoch; the API reports whole seconds.

-- Files: owned by the key that uploaded them (every other key gets a 404). Output and error files of a
-- batch are files too (purpose 'batch_output'), owned by the batch's key.
CREATE TABLE IF NOT EXISTS files (
  id TEXT PRIMARY KEY,
  key_id TEXT NOT NULL,
  filename TEXT NOT NULL,
  purpose TEXT NOT NULL CHECK (purpose IN ('batch', 'batch_output')),
  bytes INTEGER NOT NULL,
  lines INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS files_key_created ON files (key_id, created_at);

CREATE TABLE IF NOT EXISTS batches (
  id TEXT PRIMARY KEY,
  key_id TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  input_file_id TEXT NOT NULL,
  completion_window TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('validating', 'failed', 'in_progress', 'finalizing', 'completed',
    'expired', 'cancelling', 'cancelled')),
  metadata TEXT,                       -- JSON object or NULL
  errors TEXT,                         -- JSON {object: "list", data: [...]} when validation failed
  total INTEGER NOT NULL DEFAULT 0,    -- lines in the input file (set by validation)
  output_file_id TEXT,
  error_file_id TEXT,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  in_progress_at INTEGER,
  finalizing_at INTEGER,
  completed_at INTEGER,
  failed_at INTEGER,
  expired_at INTEGER,
  cancelling_at INTEGER,
  cancelled_at INTEGER
);
CREATE INDEX IF NOT EXISTS batches_key_created ON batches (key_id, created_at);

-- One row per input line that reached its end (INSERT OR IGNORE: a retried line is recorded once);
-- `result` is its output- or error-file line. request_counts are counted from here.
CREATE TABLE IF NOT EXISTS batch_lines (
  batch_id TEXT NOT NULL,
  line INTEGER NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('completed', 'failed')),
  result TEXT NOT NULL,
  recorded_at INTEGER NOT NULL,
  PRIMARY KEY (batch_id, line)
);

-- Each batch line's ledger row names its batch (NULL: an interactive request); /v1/usage splits on it.
ALTER TABLE usage_records ADD COLUMN batch_id TEXT;
CREATE INDEX IF NOT EXISTS usage_batch ON usage_records (batch_id);
