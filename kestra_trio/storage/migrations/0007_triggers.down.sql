ALTER TABLE workflows DROP COLUMN disabled_by_folder;
DROP INDEX IF EXISTS idx_executions_active;
ALTER TABLE executions DROP COLUMN concurrency_behavior;
ALTER TABLE executions DROP COLUMN concurrency_limit;
DROP TRIGGER IF EXISTS executions_record_end;
DROP TABLE IF EXISTS execution_ends;
DROP TABLE IF EXISTS cron_state;
DROP INDEX IF EXISTS idx_trigger_fires_execution;
DROP TABLE IF EXISTS trigger_fires;
