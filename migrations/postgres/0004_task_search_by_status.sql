-- Prompt search (`GET /tasks?q=`): a case-insensitive substring match (ILIKE), answered by a
-- trigram GIN index from three characters on — what SQLite's trigram FTS5 tables answer.
-- pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX tasks_prompt_trgm ON tasks USING gin (prompt gin_trgm_ops);
