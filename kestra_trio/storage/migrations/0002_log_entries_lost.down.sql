ALTER TABLE executions DROP COLUMN log_entries_lost;
