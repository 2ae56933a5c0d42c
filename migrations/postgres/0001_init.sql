-- PostgreSQL twin of migrations/sqlite: the same tables and columns. Text that is sorted or
-- compared is COLLATE "C" (byte order, as SQLite compares), so both engines order alike;
-- times are fixed-width RFC 3339 TEXT in both; integers are BIGINT.

-- Actual state the reconciler has applied, one row per resource.
CREATE TABLE resources (
    kind             TEXT COLLATE "C" NOT NULL,
    name             TEXT COLLATE "C" NOT NULL,
    digest           TEXT NOT NULL,
    spec             TEXT NOT NULL,
    applied_revision TEXT NOT NULL,
    applied_at       TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (kind, name)
);

-- Tokens in force (hashes only) and when each was last used.
CREATE TABLE tokens (
    name         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    sha256       TEXT COLLATE "C" NOT NULL UNIQUE,
    scope        TEXT NOT NULL,
    created_at   TEXT COLLATE "C",
    expires_at   TEXT COLLATE "C",
    description  TEXT,
    last_used_at TEXT COLLATE "C"
);
