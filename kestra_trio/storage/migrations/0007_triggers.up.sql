-- Triggers (cron, flow) and per-workflow concurrency limits.

-- One row per fire of a trigger. The primary key is what makes a fire happen once, whatever
-- process tries it: the row is inserted in the transaction that creates the execution, and a
-- second insert of the same key (a restart, another server) creates nothing.
CREATE TABLE trigger_fires (
    workflow_id           TEXT NOT NULL,
    trigger_id            TEXT NOT NULL,
    fire_key              TEXT NOT NULL,   -- cron: the scheduled instant (Unix ms, as text); flow: the upstream execution id
    kind                  TEXT NOT NULL,   -- cron | flow
    scheduled_at          INTEGER,         -- cron: the scheduled instant, Unix ms
    upstream_execution_id TEXT,            -- flow: the execution whose end fired it
    execution_id          TEXT NOT NULL,   -- the execution the fire created
    fired_at              INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, trigger_id, fire_key)
) WITHOUT ROWID;
CREATE INDEX idx_trigger_fires_execution ON trigger_fires(execution_id);
CREATE INDEX idx_trigger_fires_fired ON trigger_fires(fired_at);  -- pruning with retention

-- What the cron schedulers know of each cron trigger: the schedule it follows (expression and
-- time zone) and the instant up to which its fire times are handled (fired or skipped). A
-- restart catches up from there; a changed schedule starts counting when a server sees it.
CREATE TABLE cron_state (
    workflow_id  TEXT NOT NULL,
    trigger_id   TEXT NOT NULL,
    schedule     TEXT NOT NULL,     -- "<expression> <time zone>"
    handled_to   INTEGER NOT NULL,  -- Unix ms: every fire time up to here is fired or skipped
    paused       INTEGER NOT NULL DEFAULT 0,  -- seen disabled: it resumes from when it is enabled again
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, trigger_id)
) WITHOUT ROWID;

-- Every end of an execution (flow triggers' input), written by the database in the very
-- transaction that ends it, whichever process and code path ends it. The flow dispatcher
-- consumes (deletes) each row once it has fired every trigger that follows it.
CREATE TABLE execution_ends (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    workflow_id  TEXT NOT NULL,
    namespace    TEXT NOT NULL,
    state        TEXT NOT NULL,
    ended_at     INTEGER NOT NULL
);
CREATE TRIGGER executions_record_end AFTER UPDATE OF state ON executions
WHEN NEW.state IN ('SUCCESS', 'FAILED', 'CANCELLED') AND OLD.state NOT IN ('SUCCESS', 'FAILED', 'CANCELLED')
BEGIN
    INSERT INTO execution_ends (execution_id, workflow_id, namespace, state, ended_at)
    VALUES (NEW.id, NEW.workflow_id, NEW.namespace, NEW.state, NEW.updated_at);
END;

-- concurrency: {limit, behavior} of the revision the execution was created from (NULL: no
-- limit). A claim holds back (queue) or ends (cancel, fail) an execution whose workflow
-- already runs `limit` executions.
ALTER TABLE executions ADD COLUMN concurrency_limit INTEGER;
ALTER TABLE executions ADD COLUMN concurrency_behavior TEXT;
-- the executions of a workflow that count against its limit (stays as small as what runs)
CREATE INDEX idx_executions_active ON executions(workflow_id)
    WHERE state IN ('PENDING', 'RUNNING', 'WAITING');

-- set when the server's --workflows folder disabled the workflow (its file was removed): the
-- file's path. NULL when an operator disabled it (or it is enabled).
ALTER TABLE workflows ADD COLUMN disabled_by_folder TEXT;
