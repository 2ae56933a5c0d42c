-- The dashboard's hourly charts (`GET /api/v1/stats/hourly`) read the last hours of finished
-- tasks and of delivery attempts; these indexes make that a range read, not a table scan.
CREATE INDEX tasks_completed_at ON tasks (completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX delivery_attempts_at ON delivery_attempts (at);
