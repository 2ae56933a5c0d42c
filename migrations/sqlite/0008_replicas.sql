-- Replicas sharing the database (PostgreSQL; kept here so both schemas have the same
-- columns). A claimed task records which replica runs it; a due delivery is claimed by one
-- replica per attempt until `claimed_until` (unix ms).
ALTER TABLE tasks ADD COLUMN replica TEXT;
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE deliveries ADD COLUMN claimed_until INTEGER;

-- Secrets given to the API when they live in the database (see migrations/postgres).
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    sealed     TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
