-- Usage reports the worker refused to bill: their request id was never admitted here (no reservation in
-- the key's limiter, no ledger row the worker wrote). Kept for operators (GET /v1/admin/usage/rejected-reports):
-- a forged or misrouted report is visible, counted once per report id, and bills nothing.
CREATE TABLE rejected_usage_reports (
  report_id TEXT PRIMARY KEY,
  request_id TEXT NOT NULL,
  key_id TEXT,
  tier TEXT,
  backend TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  reason TEXT NOT NULL,
  received_at INTEGER NOT NULL
);
CREATE INDEX rejected_usage_reports_received ON rejected_usage_reports (received_at);
