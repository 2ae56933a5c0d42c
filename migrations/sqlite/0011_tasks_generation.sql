-- A counter that moves whenever the set of tasks a list filter can match changes: a task added
-- or removed, or its status, prompt or creation time changed (the columns the filters read).
-- A list's total, counted in the same statement as the counter is read, stays exact for as
-- long as the counter has not moved, whichever connection or process writes the tasks.
CREATE TABLE tasks_generation (n INTEGER NOT NULL);
INSERT INTO tasks_generation (n) VALUES (0);

CREATE TRIGGER tasks_generation_insert AFTER INSERT ON tasks BEGIN
    UPDATE tasks_generation SET n = n + 1;
END;

CREATE TRIGGER tasks_generation_delete AFTER DELETE ON tasks BEGIN
    UPDATE tasks_generation SET n = n + 1;
END;

CREATE TRIGGER tasks_generation_update AFTER UPDATE OF status, prompt, created_at ON tasks
WHEN old.status IS NOT new.status OR old.prompt IS NOT new.prompt OR old.created_at IS NOT new.created_at
BEGIN
    UPDATE tasks_generation SET n = n + 1;
END;
