DROP INDEX idx_refusals_execution;
DROP TABLE sandbox_refusals;
ALTER TABLE task_runs DROP COLUMN sandbox;
