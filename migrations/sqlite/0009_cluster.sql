-- The SQLite twin of migrations/postgres/0009_cluster.sql: one process is the whole
-- deployment, so these stay empty; kept so both engines have the same schema versions.
-- Replicas on one PostgreSQL database (src/cluster/): who is alive (heartbeat), who leads,
-- and the rate-limit consumption each replica publishes for the others.
CREATE TABLE replicas (
    id           TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    version      TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    last_seen    TEXT NOT NULL,
    -- When it took the lead (NULL: not the leader); the newest alive one is the leader.
    leader_since TEXT
);

CREATE TABLE rate_usage (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    replica TEXT NOT NULL,
    -- The token's SHA-256 digest, hex.
    token   TEXT NOT NULL,
    -- The token's own limit (NULL: the Config's), so every replica charges the same budget.
    rpm     INTEGER,
    burst   INTEGER,
    n       INTEGER NOT NULL,
    at      TEXT NOT NULL
);
CREATE INDEX rate_usage_at ON rate_usage (at);
