-- Ledger schema (see worker/billing). Placeholder table so migrations apply from day one.
CREATE TABLE IF NOT EXISTS schema_info (version INTEGER NOT NULL);
