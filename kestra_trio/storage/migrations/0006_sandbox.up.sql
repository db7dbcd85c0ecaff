-- Restricted mode (issue 12): what sandbox each task run had, and what it refused.
ALTER TABLE task_runs ADD COLUMN sandbox TEXT;  -- JSON: runtime, image, permissions, limits, enforcement

CREATE TABLE sandbox_refusals (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    at           INTEGER NOT NULL,    -- Unix ms
    kind         TEXT NOT NULL,       -- network | resource
    target       TEXT NOT NULL,       -- host:port, or the limit's name
    detail       TEXT
);
CREATE INDEX idx_refusals_execution ON sandbox_refusals(execution_id, task_id, id);
