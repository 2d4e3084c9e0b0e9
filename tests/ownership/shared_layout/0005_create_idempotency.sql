-- Idempotent task creation: the creation id of the request that stored a task (ADR 9).

-- Set by the gateway (one per HTTP request, or derived from the Idempotency-Key); NULL: stored without one (tasks
-- created before this migration), never de-duplicated. Ids older than the orchestrator's creation_id_ttl_seconds
-- are cleared when the same id comes again, so that a key reused after the TTL creates a new task.
ALTER TABLE tasks ADD COLUMN creation_id text;
CREATE UNIQUE INDEX tasks_account_creation ON tasks (account_id, creation_id);
