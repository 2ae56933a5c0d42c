-- PostgreSQL's 0010 records each event's transaction for the fan-out's horizon. SQLite has
-- one writer at a time: `seq` already follows commit order, nothing changes here.
SELECT 1;
