-- Round 2: executions are enqueued (QUEUED) and claimed by a worker; workflows are kept
-- in a registry with one row per applied revision.

-- the queue an execution waits in ('default': any worker of a server; 'local:<token>': the
-- one process that enqueued it, e.g. `kestra-trio run`)
ALTER TABLE executions ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
-- the worker (process) that claimed it: a random token per service; engine_pid/engine_host
-- name its process. heartbeat_at moves while the worker lives (liveness across hosts).
ALTER TABLE executions ADD COLUMN worker_id TEXT;
ALTER TABLE executions ADD COLUMN claimed_at INTEGER;
ALTER TABLE executions ADD COLUMN heartbeat_at INTEGER;
-- the workflow revision the execution ran (NULL: created before the registry existed)
ALTER TABLE executions ADD COLUMN workflow_revision INTEGER;
-- what a worker claims next: the oldest QUEUED execution of its queue (a partial index
-- stays as small as the queue)
CREATE INDEX idx_executions_queued ON executions(queue, created_at, id) WHERE state = 'QUEUED';

CREATE TABLE workflows (
    id          TEXT PRIMARY KEY,
    namespace   TEXT NOT NULL,
    revision    INTEGER NOT NULL,     -- the latest revision
    enabled     INTEGER NOT NULL DEFAULT 1,  -- operator switch (`workflow enable|disable`)
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE workflow_revisions (
    workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    revision    INTEGER NOT NULL,     -- 1, 2, ... per workflow
    namespace   TEXT NOT NULL,
    source      TEXT NOT NULL,        -- the YAML text exactly as applied
    source_hash TEXT NOT NULL,        -- sha256 of the UTF-8 source, hex
    source_path TEXT,                 -- the file it was applied from
    task_count  INTEGER NOT NULL,
    applied_at  INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, revision)
) WITHOUT ROWID;
