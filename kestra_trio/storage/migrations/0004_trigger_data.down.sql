ALTER TABLE executions DROP COLUMN trigger_data;
