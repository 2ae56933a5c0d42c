-- Replicas sharing the database. A claimed task records which replica runs it; a due
-- delivery is claimed by one replica per attempt until `claimed_until` (unix ms), after
-- which another replica may retake the attempt (its sender died).
ALTER TABLE tasks ADD COLUMN replica TEXT;
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE deliveries ADD COLUMN claimed_until BIGINT;

-- Secrets given to the API (a webhook's `secret`), sealed with the deployment's key
-- (XChaCha20-Poly1305; `key_id` names the key, `nonce` and `sealed` are base64).
CREATE TABLE secrets (
    name       TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    sealed     TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
