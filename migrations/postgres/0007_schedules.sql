-- PostgreSQL twin of migrations/sqlite/0007 (sorted text COLLATE "C", BIGINT).
-- Schedules (SPEC §3 Schedule): the applied spec of each Schedule manifest, the runner's
-- cursor, and one row per slot it handled. Times are fixed-width RFC 3339 UTC text.
CREATE TABLE schedules (
    name       TEXT COLLATE "C" PRIMARY KEY,
    -- The applied spec, JSON; written by the reconciler's Schedule handler.
    spec       TEXT NOT NULL,
    -- When the runner first saw this spec (the anchor of `every`); NULL until it has.
    since      TEXT COLLATE "C",
    -- Slots at or before this instant are handled (fired, skipped or counted); NULL until the
    -- runner has seen this spec. Moved only by compare-and-set, so one runner counts a slot.
    cursor     TEXT COLLATE "C",
    -- Slots that never fired: missed past `starting_deadline_seconds`, or passed over when
    -- several were missed at once (they fire once, not once each).
    skipped    BIGINT NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);

-- Every slot that was run or deliberately not run; (schedule, slot) is unique, so a slot
-- fires at most once whatever the number of replicas or restarts: only the runner whose
-- INSERT … ON CONFLICT DO NOTHING inserted the row starts the task.
CREATE TABLE schedule_runs (
    schedule TEXT COLLATE "C" NOT NULL,
    -- The slot's instant; `manual:<task id>` for POST /schedules/:name/run.
    slot     TEXT COLLATE "C" NOT NULL,
    -- `slot` or `manual`.
    trigger  TEXT NOT NULL,
    -- The task started; NULL when the slot was skipped (see `outcome`).
    task_id  TEXT,
    -- NULL: the task's status is the outcome; `skipped` otherwise, with `message`.
    outcome  TEXT,
    message  TEXT,
    fired_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (schedule, slot)
);
CREATE INDEX schedule_runs_fired ON schedule_runs (schedule, fired_at);

-- A task started by a schedule names it and its slot.
ALTER TABLE tasks ADD COLUMN schedule TEXT COLLATE "C";
ALTER TABLE tasks ADD COLUMN schedule_slot TEXT COLLATE "C";
CREATE INDEX tasks_schedule ON tasks (schedule, status);
