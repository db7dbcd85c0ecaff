-- How many log entries of the execution could not be written (the database refused writes
-- until the engine gave up); each loss also has an ERROR entry at the place of the gap.
ALTER TABLE executions ADD COLUMN log_entries_lost INTEGER NOT NULL DEFAULT 0;
