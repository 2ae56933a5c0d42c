-- Outbox order without a lock (replaces 0009's `outbox_order` trigger). 0009 made `seq` follow
-- commit order by taking one advisory lock in every event-writing transaction until it
-- committed: with replicas, every claim and every finished task of every replica queued on it
-- (the replicas bench measured ten times the single replica's lock waits).
--
-- Now each event records the transaction that wrote it (`tx`), and the fan-out reads events in
-- `(tx, seq)` order only below the oldest transaction still running
-- (`pg_snapshot_xmin(pg_current_snapshot())`): every transaction below it has ended, so no
-- event can appear behind the fan-out's cursor later (src/store/deliveries.rs).
DROP TRIGGER outbox_order ON outbox;
DROP FUNCTION claw_outbox_order();
ALTER TABLE outbox ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX outbox_tx_seq ON outbox (tx, seq);
-- Events so far carry this migration's transaction: the cursor goes on from (it, old seq).
INSERT INTO cursors (name, value)
    VALUES ('outbox_fanout_tx', CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT))
    ON CONFLICT (name) DO UPDATE SET value = excluded.value;
