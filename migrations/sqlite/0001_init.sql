-- Actual state the reconciler has applied, one row per resource.
CREATE TABLE resources (
    kind             TEXT NOT NULL,
    name             TEXT NOT NULL,
    digest           TEXT NOT NULL,
    spec             TEXT NOT NULL,
    applied_revision TEXT NOT NULL,
    applied_at       TEXT NOT NULL,
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;

-- Tokens in force (hashes only) and when each was last used.
CREATE TABLE tokens (
    name         TEXT PRIMARY KEY NOT NULL,
    sha256       TEXT NOT NULL UNIQUE,
    scope        TEXT NOT NULL,
    created_at   TEXT,
    expires_at   TEXT,
    description  TEXT,
    last_used_at TEXT
);
