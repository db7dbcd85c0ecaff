-- The workflow language for real jobs (issue 11): labels, workflow outputs, subflow links,
-- restarts, for_each iterations, errors/finally phases and metrics.

-- the workflow's `outputs:`, rendered when its tasks are done (JSON object, masked)
ALTER TABLE executions ADD COLUMN outputs TEXT;
-- the execution's labels (JSON object); execution_labels holds the same pairs, indexed
ALTER TABLE executions ADD COLUMN labels TEXT;
-- a subflow's child execution: the execution and task that started it, and how deep it is
ALTER TABLE executions ADD COLUMN parent_execution_id TEXT;
ALTER TABLE executions ADD COLUMN parent_task_id TEXT;
ALTER TABLE executions ADD COLUMN subflow_depth INTEGER NOT NULL DEFAULT 0;
-- how many times `execution restart` took it back to QUEUED
ALTER TABLE executions ADD COLUMN restart_count INTEGER NOT NULL DEFAULT 0;
CREATE INDEX idx_executions_parent ON executions(parent_execution_id) WHERE parent_execution_id IS NOT NULL;

-- `execution list --label k=v`: one row per label, found through (key, value)
CREATE TABLE execution_labels (
    execution_id TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (execution_id, key)
) WITHOUT ROWID;
CREATE INDEX idx_labels_key_value ON execution_labels(key, value, execution_id);

-- a for_each iteration `each[2]`: its task (`each`), index and item (JSON, masked)
ALTER TABLE task_runs ADD COLUMN parent_task_id TEXT;
ALTER TABLE task_runs ADD COLUMN iteration INTEGER;
ALTER TABLE task_runs ADD COLUMN item TEXT;
-- which list the task is in: tasks | errors | finally
ALTER TABLE task_runs ADD COLUMN phase TEXT NOT NULL DEFAULT 'tasks';

-- `::{"metrics": [...]}::` lines: one row per metric a task attempt reported
CREATE TABLE task_metrics (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    name         TEXT NOT NULL,
    type         TEXT,                -- counter | timer | gauge, as the task said (NULL: not said)
    value        REAL NOT NULL,
    tags         TEXT,                -- JSON object of text values, masked
    recorded_at  INTEGER NOT NULL     -- Unix ms
);
CREATE INDEX idx_metrics_execution ON task_metrics(execution_id, task_id, id);
