-- Tasks: runtime records (not manifests). `seq` orders them (newest first = seq DESC).
CREATE TABLE tasks (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    status            TEXT NOT NULL,
    prompt            TEXT NOT NULL,
    options           TEXT NOT NULL,
    model             TEXT NOT NULL,
    max_tokens        INTEGER NOT NULL,
    working_directory TEXT,
    timeout_seconds   INTEGER NOT NULL,
    created_by        TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    started_at        TEXT,
    completed_at      TEXT,
    duration_ms       INTEGER,
    error             TEXT,
    output            TEXT,
    files             TEXT,
    input_tokens      INTEGER,
    output_tokens     INTEGER
);
CREATE INDEX tasks_status_seq ON tasks (status, seq);
CREATE INDEX tasks_created_at ON tasks (created_at);

-- Substring search of prompts (`GET /tasks?q=`), kept in step by triggers.
CREATE VIRTUAL TABLE tasks_fts USING fts5(prompt, content = 'tasks', content_rowid = 'seq', tokenize = 'trigram');
CREATE TRIGGER tasks_fts_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO tasks_fts (rowid, prompt) VALUES (new.seq, new.prompt);
END;
CREATE TRIGGER tasks_fts_delete AFTER DELETE ON tasks BEGIN
    INSERT INTO tasks_fts (tasks_fts, rowid, prompt) VALUES ('delete', old.seq, old.prompt);
END;

-- Events, written in the same transaction as the change that caused them; webhook delivery
-- reads from here. `payload` holds the exact bytes that are sent and signed.
CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    event      TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL
);
