-- A chat request that ended in a backend failure is billed what its client received (README "Backend
-- failures"). The backend's later usage report may count more (a stalled replica runs on for a step or
-- two after it is given up on); 1 here makes the worker's count final: a report never raises it.
ALTER TABLE usage_records ADD COLUMN delivered_final INTEGER NOT NULL DEFAULT 0;
