-- kestra-trio schema, version 1. Timestamps are Unix milliseconds (INTEGER).
CREATE TABLE executions (
    id              TEXT PRIMARY KEY,
    workflow_id     TEXT NOT NULL,
    namespace       TEXT NOT NULL DEFAULT 'default',
    state           TEXT NOT NULL,
    reason_code     TEXT,
    message         TEXT,
    trigger_type    TEXT NOT NULL DEFAULT 'manual',
    inputs          TEXT,             -- JSON, secrets masked
    workflow_path   TEXT,
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    ended_at        INTEGER,
    updated_at      INTEGER NOT NULL,
    timeout_ms      INTEGER,
    log_entry_count INTEGER NOT NULL DEFAULT 0,
    task_count      INTEGER NOT NULL DEFAULT 0,
    failed_task_id  TEXT,
    cancelled_by    TEXT,             -- user | system
    engine_pid      INTEGER,
    engine_host     TEXT
);
CREATE INDEX idx_executions_created ON executions(created_at);
CREATE INDEX idx_executions_workflow ON executions(workflow_id, created_at);
CREATE INDEX idx_executions_state ON executions(state, created_at);

CREATE TABLE task_runs (
    execution_id  TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    task_id       TEXT NOT NULL,
    position      INTEGER NOT NULL,   -- order in the workflow file
    type          TEXT NOT NULL,
    needs         TEXT NOT NULL DEFAULT '[]',  -- JSON list of task ids
    state         TEXT NOT NULL,
    reason_code   TEXT,
    message       TEXT,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL DEFAULT 1,
    timeout_ms    INTEGER,
    inputs        TEXT,               -- JSON, resolved, secrets masked
    outputs       TEXT,               -- JSON
    error         TEXT,               -- JSON: message, type, exit_code, signal, reason_code, stderr_tail, ...
    started_at    INTEGER,
    ended_at      INTEGER,
    duration_ms   INTEGER,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (execution_id, task_id)
) WITHOUT ROWID;

CREATE TABLE task_attempts (
    execution_id TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    number       INTEGER NOT NULL,    -- 1-based
    state        TEXT NOT NULL,       -- RUNNING | SUCCESS | FAILED | TIMED_OUT | CANCELLED
    reason_code  TEXT,
    message      TEXT,
    exit_code    INTEGER,
    signal       TEXT,                -- signal we sent, e.g. SIGTERM, SIGKILL
    pid          INTEGER,
    started_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    duration_ms  INTEGER,
    PRIMARY KEY (execution_id, task_id, number),
    FOREIGN KEY (execution_id, task_id) REFERENCES task_runs(execution_id, task_id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE cancel_requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    requested_by TEXT NOT NULL,       -- user | system
    reason       TEXT,
    requested_at INTEGER NOT NULL,
    handled_at   INTEGER
);
CREATE INDEX idx_cancel_pending ON cancel_requests(execution_id, handled_at);

CREATE TABLE execution_logs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    task_id      TEXT,
    timestamp    INTEGER NOT NULL,    -- Unix ms
    level        TEXT NOT NULL,
    source       TEXT NOT NULL,
    message      TEXT NOT NULL,
    metadata     TEXT
);
CREATE INDEX idx_logs_execution ON execution_logs(execution_id, timestamp);
CREATE INDEX idx_logs_task ON execution_logs(task_id, timestamp);

CREATE TABLE execution_audit_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    timestamp    INTEGER NOT NULL,
    metadata     TEXT NOT NULL
);
CREATE INDEX idx_audit_execution ON execution_audit_events(execution_id, timestamp);

-- Retention is the only path allowed to delete audit rows: it sets the cutoff in the same
-- transaction as its DELETEs, and the trigger refuses to delete anything newer.
CREATE TABLE retention_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    audit_cutoff INTEGER NOT NULL DEFAULT 0,
    last_cleanup INTEGER
);
INSERT INTO retention_state (id, audit_cutoff, last_cleanup) VALUES (1, 0, NULL);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON execution_audit_events
BEGIN
    SELECT RAISE(ABORT, 'execution_audit_events is append-only');
END;

CREATE TRIGGER audit_delete_only_expired BEFORE DELETE ON execution_audit_events
WHEN OLD.timestamp >= COALESCE((SELECT audit_cutoff FROM retention_state WHERE id = 1), 0)
BEGIN
    SELECT RAISE(ABORT, 'execution_audit_events is append-only (only retention cleanup may delete expired rows)');
END;
