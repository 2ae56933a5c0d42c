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
    id      BIGSERIAL PRIMARY KEY,
    replica TEXT NOT NULL,
    -- The token's SHA-256 digest, hex.
    token   TEXT NOT NULL,
    -- The token's own limit (NULL: the Config's), so every replica charges the same budget.
    rpm     BIGINT,
    burst   BIGINT,
    n       BIGINT NOT NULL,
    at      TEXT NOT NULL
);
CREATE INDEX rate_usage_at ON rate_usage (at);

-- Events written by any replica wake every replica's webhook worker at once (the leader fans
-- them out): one notification per inserting transaction (identical ones are folded).
CREATE FUNCTION claw_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('claw_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION claw_outbox_notify();

-- Outbox order = commit order. `seq` is taken when a row is inserted, but transactions commit
-- in any order: a fan-out could read seq 6, move its cursor past 5, and never see 5 when its
-- transaction commits later. Every transaction that writes events takes this transaction-level
-- lock first (before its rows get their seq) and keeps it until it commits, so a visible seq
-- means every lower one is committed (or rolled back) already.
CREATE FUNCTION claw_outbox_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7164208272838587490); -- "clawoutb"
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_order BEFORE INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION claw_outbox_order();
