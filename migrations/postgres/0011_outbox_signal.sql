-- The leader hears of events other replicas wrote from those replicas (src/cluster/notify.rs,
-- at most one `claw_outbox` notification per replica every 25 ms), no longer from a trigger
-- on every event-writing transaction (0009). PostgreSQL signals every listening session of
-- the database at each notifying commit, whatever the channel: with three replicas each of
-- the bench's 2,000 event-writing transactions woke three sessions, the leader's own events
-- included (it signals its own worker in memory).
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION claw_outbox_notify();
