"""SqliteQueue: the `Queue` port on SQLite — enqueue, claim, heartbeat, release, cancel while queued.

A claim is the QUEUED → RUNNING transition itself, made in one BEGIN IMMEDIATE transaction
with the STARTED audit event and the claiming worker's id, pid, host and first heartbeat: a
claimed execution is never without an owner, so lost-engine recovery works the same for
`kestra-trio run` and for a server. A QUEUED execution is just a row: it survives kill -9.

Concurrency limits are enforced by the claim, in the same transaction: an execution whose
workflow already runs `concurrency_limit` executions stays QUEUED (behavior queue) or ends at
once, CANCELLED or FAILED [CONCURRENCY_LIMIT] (behavior cancel / fail). A trigger's fire is
recorded by the enqueue that creates its execution (`fire=`), so it happens once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from kestra_trio.observability.records import AuditEvent, AuditEventType, LogEntry, LogLevel, now_ms
from kestra_trio.state.states import Reason, State
from kestra_trio.storage.audit import insert_audit_sync
from kestra_trio.storage.db import Database
from kestra_trio.storage.executions import (
    NewExecution,
    NewTaskRun,
    StateChange,
    apply_sync,
    create_sync,
)
from kestra_trio.storage.logs import insert_logs_sync
from kestra_trio.storage.ports import WorkerIdentity
from kestra_trio.storage.rows import EXECUTION_SELECT, ExecutionRow
from kestra_trio.storage.triggers import TriggerFire, insert_fire_sync

#: the states that count against a workflow's concurrency limit
ACTIVE_STATES = ("PENDING", "RUNNING", "WAITING")


def _enqueue(
    raw: sqlite3.Connection, new: NewExecution, tasks: Sequence[NewTaskRun], at: int,
    fire: TriggerFire | None, concurrency: tuple[int, str] | None,
) -> None:
    if fire is not None:  # first: a fire made before raises AlreadyFired and nothing is created
        insert_fire_sync(raw, fire, new.id, at)
    create_sync(raw, new, tasks, at, State.QUEUED)
    if concurrency is not None:
        raw.execute(
            "UPDATE executions SET concurrency_limit = ?, concurrency_behavior = ? WHERE id = ?", (*concurrency, new.id)
        )
    insert_audit_sync(raw, [AuditEvent(new.id, AuditEventType.QUEUED, {"queue": new.queue}, at)])


def _claimable(raw: sqlite3.Connection, queues: Sequence[str], limit: int) -> tuple[list[str], list[tuple[str, str, int]]]:
    """The oldest QUEUED executions of `queues` that may start now (at most `limit`), and those
    a cancel/fail concurrency limit ends instead: (id, behavior, limit). Held-back ones (queue)
    are skipped, so a blocked workflow never starves the others."""
    marks = ",".join("?" * len(queues))
    ids: list[str] = []
    refused: list[tuple[str, str, int]] = []
    active: dict[str, int] = {}
    after: tuple[int, str] = (-1, "")
    page = limit + 32
    while len(ids) < limit:
        rows = raw.execute(
            "SELECT id, workflow_id, concurrency_limit, concurrency_behavior, created_at FROM executions "
            f"INDEXED BY idx_executions_queued WHERE state = 'QUEUED' AND queue IN ({marks}) "
            "AND (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?",
            (*queues, *after, page),
        ).fetchall()
        for execution_id, workflow_id, cap, behavior, created_at in rows:
            after = (created_at, execution_id)
            if cap is not None:
                if workflow_id not in active:
                    active[workflow_id] = raw.execute(
                        "SELECT count(*) FROM executions INDEXED BY idx_executions_active WHERE workflow_id = ? "
                        f"AND state IN {ACTIVE_STATES}",
                        (workflow_id,),
                    ).fetchone()[0]
                if active[workflow_id] >= cap:
                    if behavior in ("cancel", "fail"):
                        refused.append((execution_id, behavior, cap))
                    continue
                active[workflow_id] += 1
            ids.append(execution_id)
            if len(ids) == limit:
                break
        if len(rows) < page:
            break
    return ids, refused


def _claim(raw: sqlite3.Connection, worker: WorkerIdentity, queues: Sequence[str], limit: int, at: int) -> list[ExecutionRow]:
    """Claimed executions (RUNNING), then those a concurrency limit ended (CANCELLED / FAILED)."""
    ids, refused = _claimable(raw, queues, limit)
    for execution_id, behavior, cap in refused:
        _refuse(raw, execution_id, behavior, cap, at)
    changes = [
        StateChange(
            execution_id, State.RUNNING, Reason.STARTED.value,
            fields={
                "started_at": at, "claimed_at": at, "heartbeat_at": at, "worker_id": worker.worker_id,
                "engine_pid": worker.pid, "engine_host": worker.host,
            },
            audit=[AuditEvent(execution_id, AuditEventType.STARTED, {
                "worker_id": worker.worker_id, "engine_pid": worker.pid, "engine_host": worker.host,
            }, at)],
            at=at,
        )
        for execution_id in ids
    ]
    apply_sync(raw, changes)
    return [
        ExecutionRow.from_row(raw.execute(f"SELECT {EXECUTION_SELECT} FROM executions WHERE id = ?", (eid,)).fetchone())
        for eid in [*ids, *(r[0] for r in refused)]
    ]


def _refuse(raw: sqlite3.Connection, execution_id: str, behavior: str, cap: int, at: int) -> None:
    """concurrency behavior cancel / fail: the new execution ends at once, its tasks never started."""
    workflow_id = raw.execute("SELECT workflow_id FROM executions WHERE id = ?", (execution_id,)).fetchone()[0]
    cause = f"workflow {workflow_id} already runs {cap} execution(s), its concurrency limit (behavior: {behavior})"
    reason = Reason.CONCURRENCY_LIMIT.value
    if behavior == "cancel":
        state, fields = State.CANCELLED, {"cancelled_by": "concurrency"}
        audit = AuditEvent(execution_id, AuditEventType.CANCELLED, {
            "cancelled_by": "concurrency", "reason": cause, "reason_code": reason,
        }, at)
    else:
        state, fields = State.FAILED, {}
        audit = AuditEvent(execution_id, AuditEventType.FAILED, {
            "error_message": cause, "failed_task_id": None, "reason_code": reason,
        }, at)
    _end_queued(
        raw, execution_id, state, reason, cause, fields, audit, at,
        task_line=f"Task cancelled: the execution {state.value.lower()} at once, {cause}; it had not started",
        log_line=lambda tasks: f"Execution {state.value.lower()} at once: {cause}; {tasks} task(s) never started",
    )


def _end_queued(
    raw: sqlite3.Connection, execution_id: str, state: State, reason: str, cause: str,
    fields: dict, audit: AuditEvent, at: int, *, task_line: str, log_line: Callable[[int], str],
) -> None:
    """End a QUEUED execution (`state`, `reason`): its tasks CANCELLED as never started (with
    `task_line`), the audit event, a scheduler WARN line (`log_line(number of tasks)`)."""
    tasks = [r[0] for r in raw.execute("SELECT task_id FROM task_runs WHERE execution_id = ? ORDER BY position", (execution_id,))]
    error = {"message": task_line, "type": "NotStarted", "reason_code": reason}
    changes = [
        StateChange(
            execution_id, State.CANCELLED, reason, f"execution {cause}", task_id=task_id,
            fields={"ended_at": at, "error": error}, at=at,
        )
        for task_id in tasks
    ]
    changes.append(
        StateChange(execution_id, state, reason, cause, fields={"ended_at": at, **fields}, audit=[audit], at=at)
    )
    apply_sync(raw, changes)
    insert_logs_sync(raw, [
        LogEntry(execution_id, None, LogLevel.WARN, "scheduler",
                 log_line(len(tasks)), {"reason_code": reason, **fields}, at),
    ])


def _heartbeat(raw: sqlite3.Connection, worker_id: str, execution_ids: Sequence[str], at: int) -> None:
    raw.executemany(
        "UPDATE executions SET heartbeat_at = ? WHERE id = ? AND worker_id = ?",
        [(at, eid, worker_id) for eid in execution_ids],
    )


def _release(raw: sqlite3.Connection, worker_id: str, execution_id: str) -> None:
    # the lease ends; who ran it (worker_id, engine_pid, engine_host) stays on the row
    raw.execute("UPDATE executions SET heartbeat_at = NULL WHERE id = ? AND worker_id = ?", (execution_id, worker_id))


def _cancel_queued(raw: sqlite3.Connection, execution_id: str, by: str, reason: str, at: int) -> bool:
    row = raw.execute("SELECT state FROM executions WHERE id = ?", (execution_id,)).fetchone()
    if row is None or row[0] != State.QUEUED.value:
        return False
    pending = raw.execute("SELECT count(*) FROM task_runs WHERE execution_id = ?", (execution_id,)).fetchone()[0]
    audit = AuditEvent(execution_id, AuditEventType.CANCELLED, {
        "cancelled_by": by, "reason": reason, "pending_task_count": pending,
    }, at)
    cause = f"cancelled by {by}: {reason}"
    _end_queued(
        raw, execution_id, State.CANCELLED, Reason.EXECUTION_CANCELLED.value, cause, {"cancelled_by": by}, audit, at,
        task_line=f"Task cancelled due to execution cancellation ({cause}); it had not started",
        log_line=lambda tasks: f"Execution cancelled while queued ({cause}); {tasks} task(s) never started",
    )
    raw.execute(
        "UPDATE cancel_requests SET handled_at = ? WHERE execution_id = ? AND handled_at IS NULL", (at, execution_id)
    )
    return True


class SqliteQueue:
    """The `Queue` port on one SQLite database (see `storage.ports`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def enqueue(
        self, new: NewExecution, tasks: Sequence[NewTaskRun], *, at: int | None = None,
        fire: TriggerFire | None = None, concurrency: tuple[int, str] | None = None,
    ) -> None:
        """Create the execution QUEUED; with `fire`, record that fire in the same transaction
        (raises `AlreadyFired`, creating nothing, if it was made before)."""
        await self.db.write(_enqueue, new, tasks, now_ms() if at is None else at, fire, concurrency)

    async def claim(self, worker: WorkerIdentity, queues: Sequence[str], *, limit: int = 1) -> list[ExecutionRow]:
        if not queues or limit < 1:
            return []
        return await self.db.write(_claim, worker, tuple(queues), limit, now_ms())

    async def heartbeat(self, worker: WorkerIdentity, execution_ids: Sequence[str]) -> None:
        if execution_ids:
            await self.db.write(_heartbeat, worker.worker_id, list(execution_ids), now_ms())

    async def release(self, worker: WorkerIdentity, execution_id: str) -> None:
        await self.db.write(_release, worker.worker_id, execution_id)

    async def cancel_queued(self, execution_id: str, by: str, reason: str) -> bool:
        return await self.db.write(_cancel_queued, execution_id, by, reason, now_ms())
