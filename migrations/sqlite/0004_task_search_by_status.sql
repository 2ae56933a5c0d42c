-- Prompt search partitioned by status: one trigram index per status group, so a search with a
-- status filter counts its matches in the index alone instead of reading every matching row
-- to check its status. A task moves between indexes when its status group changes (queued and
-- running share one, which holds only tasks in flight).
DROP TRIGGER tasks_fts_insert;
DROP TRIGGER tasks_fts_delete;
DROP TABLE tasks_fts;

CREATE VIRTUAL TABLE tasks_fts_active USING fts5(prompt, content = 'tasks', content_rowid = 'seq', tokenize = 'trigram');
CREATE VIRTUAL TABLE tasks_fts_completed USING fts5(prompt, content = 'tasks', content_rowid = 'seq', tokenize = 'trigram');
CREATE VIRTUAL TABLE tasks_fts_failed USING fts5(prompt, content = 'tasks', content_rowid = 'seq', tokenize = 'trigram');
CREATE VIRTUAL TABLE tasks_fts_cancelled USING fts5(prompt, content = 'tasks', content_rowid = 'seq', tokenize = 'trigram');

INSERT INTO tasks_fts_active (rowid, prompt) SELECT seq, prompt FROM tasks WHERE status NOT IN ('completed', 'failed', 'cancelled');
INSERT INTO tasks_fts_completed (rowid, prompt) SELECT seq, prompt FROM tasks WHERE status = 'completed';
INSERT INTO tasks_fts_failed (rowid, prompt) SELECT seq, prompt FROM tasks WHERE status = 'failed';
INSERT INTO tasks_fts_cancelled (rowid, prompt) SELECT seq, prompt FROM tasks WHERE status = 'cancelled';

CREATE TRIGGER tasks_fts_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO tasks_fts_active (rowid, prompt) SELECT new.seq, new.prompt WHERE new.status NOT IN ('completed', 'failed', 'cancelled');
    INSERT INTO tasks_fts_completed (rowid, prompt) SELECT new.seq, new.prompt WHERE new.status = 'completed';
    INSERT INTO tasks_fts_failed (rowid, prompt) SELECT new.seq, new.prompt WHERE new.status = 'failed';
    INSERT INTO tasks_fts_cancelled (rowid, prompt) SELECT new.seq, new.prompt WHERE new.status = 'cancelled';
END;

CREATE TRIGGER tasks_fts_delete AFTER DELETE ON tasks BEGIN
    INSERT INTO tasks_fts_active (tasks_fts_active, rowid, prompt) SELECT 'delete', old.seq, old.prompt WHERE old.status NOT IN ('completed', 'failed', 'cancelled');
    INSERT INTO tasks_fts_completed (tasks_fts_completed, rowid, prompt) SELECT 'delete', old.seq, old.prompt WHERE old.status = 'completed';
    INSERT INTO tasks_fts_failed (tasks_fts_failed, rowid, prompt) SELECT 'delete', old.seq, old.prompt WHERE old.status = 'failed';
    INSERT INTO tasks_fts_cancelled (tasks_fts_cancelled, rowid, prompt) SELECT 'delete', old.seq, old.prompt WHERE old.status = 'cancelled';
END;

-- Prompts never change; a status change moves the entry when the group changes.
CREATE TRIGGER tasks_fts_move AFTER UPDATE OF status ON tasks
WHEN (CASE WHEN old.status IN ('completed', 'failed', 'cancelled') THEN old.status ELSE 'active' END)
  != (CASE WHEN new.status IN ('completed', 'failed', 'cancelled') THEN new.status ELSE 'active' END)
BEGIN
    INSERT INTO tasks_fts_active (tasks_fts_active, rowid, prompt) SELECT 'delete', old.seq, old.prompt WHERE old.status NOT IN ('completed', 'failed', 'cancelled');
    INSERT INTO tasks_fts_completed (tasks_fts_completed, rowid, prompt) SELECT 'delete', old.seq, old.prompt WHERE old.status = 'completed';
    INSERT INTO tasks_fts_failed (tasks_fts_failed, rowid, prompt) SELECT 'delete', old.seq, old.prompt WHERE old.status = 'failed';
    INSERT INTO tasks_fts_cancelled (tasks_fts_cancelled, rowid, prompt) SELECT 'delete', old.seq, old.prompt WHERE old.status = 'cancelled';
    INSERT INTO tasks_fts_active (rowid, prompt) SELECT new.seq, new.prompt WHERE new.status NOT IN ('completed', 'failed', 'cancelled');
    INSERT INTO tasks_fts_completed (rowid, prompt) SELECT new.seq, new.prompt WHERE new.status = 'completed';
    INSERT INTO tasks_fts_failed (rowid, prompt) SELECT new.seq, new.prompt WHERE new.status = 'failed';
    INSERT INTO tasks_fts_cancelled (rowid, prompt) SELECT new.seq, new.prompt WHERE new.status = 'cancelled';
END;
