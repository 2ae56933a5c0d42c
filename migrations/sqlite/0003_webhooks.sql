-- Webhook endpoints in force (the Webhook manifests, converged). The secret is never stored
-- here: `secret_ref` is the manifest's reference ({fromEnv}, {fromFile} or {ref}).
CREATE TABLE webhook_endpoints (
    name            TEXT PRIMARY KEY NOT NULL,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,
    secret_ref      TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    -- Set when the server disabled the endpoint itself (410 Gone); cleared by a manifest change.
    disabled_reason TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- One row per (endpoint, event): the delivery id is stable across retries and restarts.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    endpoint        TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,          -- pending | delivered | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,       -- unix milliseconds
    created_at      TEXT NOT NULL,
    completed_at    TEXT,
    last_status     INTEGER,
    last_error      TEXT,
    UNIQUE (endpoint, event_id)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint, created_at);

-- Every attempt, as `GET /webhooks/:id/deliveries` lists it.
CREATE TABLE delivery_attempts (
    delivery_id   TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    at            TEXT NOT NULL,
    status_code   INTEGER,
    duration_ms   INTEGER NOT NULL,
    error         TEXT,
    response_body TEXT,
    PRIMARY KEY (delivery_id, attempt)
) WITHOUT ROWID;

-- Cursors of background workers (e.g. the last outbox event fanned out to deliveries).
CREATE TABLE cursors (
    name  TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
);
