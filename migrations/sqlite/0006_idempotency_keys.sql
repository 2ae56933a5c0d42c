-- `Idempotency-Key` on creating POSTs (api/idempotency.rs): one row per (token, key), kept
-- 24 h. `status` is NULL while the first request runs (the reservation); then the first
-- response is stored for replay. The token is its SHA-256 digest (hex), never the token.
CREATE TABLE idempotency_keys (
    token_sha256 TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    -- SHA-256 (hex) of the method, path and body of the first request.
    fingerprint TEXT NOT NULL,
    -- RFC 3339 UTC, fixed width: when the key was reserved (it expires 24 h later).
    created_at TEXT NOT NULL,
    status INTEGER,
    -- JSON object of the response headers replayed (Content-Type, Location, ETag).
    headers TEXT,
    body TEXT,
    PRIMARY KEY (token_sha256, idem_key)
);
-- Pruning reads the expired rows by time.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
