DROP TABLE IF EXISTS workflow_revisions;
DROP TABLE IF EXISTS workflows;
DROP INDEX IF EXISTS idx_executions_queued;
ALTER TABLE executions DROP COLUMN workflow_revision;
ALTER TABLE executions DROP COLUMN heartbeat_at;
ALTER TABLE executions DROP COLUMN claimed_at;
ALTER TABLE executions DROP COLUMN worker_id;
ALTER TABLE executions DROP COLUMN queue;
