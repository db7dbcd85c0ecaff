"""SqliteQueue: the `Queue` port on SQLite — enqueue, claim, heartbeat, release, cancel while queued.

A claim is the QUEUED → RUNNING transition itself, made in one BEGIN IMMEDIATE transaction
with the STARTED audit event and the claiming worker's id, pid, host and first heartbeat: a
claimed execution is never without an owner, so lost-engine recovery works the same for
`kestra-trio run` and for a server. A QUEUED execution is just a row: it survives kill -9.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

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


def _enqueue(raw: sqlite3.Connection, new: NewExecution, tasks: Sequence[NewTaskRun], at: int) -> None:
    create_sync(raw, new, tasks, at, State.QUEUED)
    insert_audit_sync(raw, [AuditEvent(new.id, AuditEventType.QUEUED, {"queue": new.queue}, at)])


def _claim(raw: sqlite3.Connection, worker: WorkerIdentity, queues: Sequence[str], limit: int, at: int) -> list[ExecutionRow]:
    marks = ",".join("?" * len(queues))
    ids = [
        row[0]
        for row in raw.execute(
            f"SELECT id FROM executions INDEXED BY idx_executions_queued WHERE state = 'QUEUED' AND queue IN ({marks}) "
            "ORDER BY created_at, id LIMIT ?",
            (*queues, limit),
        )
    ]
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
        for eid in ids
    ]


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
    cause = f"cancelled by {by}: {reason}"
    tasks = [r[0] for r in raw.execute("SELECT task_id FROM task_runs WHERE execution_id = ? ORDER BY position", (execution_id,))]
    line = f"Task cancelled due to execution cancellation ({cause}); it had not started"
    error = {"message": line, "type": "NotStarted", "reason_code": Reason.EXECUTION_CANCELLED.value}
    changes = [
        StateChange(
            execution_id, State.CANCELLED, Reason.EXECUTION_CANCELLED.value, f"execution {cause}", task_id=task_id,
            fields={"ended_at": at, "error": error}, at=at,
        )
        for task_id in tasks
    ]
    changes.append(
        StateChange(
            execution_id, State.CANCELLED, Reason.EXECUTION_CANCELLED.value, cause,
            fields={"ended_at": at, "cancelled_by": by},
            audit=[AuditEvent(execution_id, AuditEventType.CANCELLED, {
                "cancelled_by": by, "reason": reason, "pending_task_count": len(tasks),
            }, at)],
            at=at,
        )
    )
    apply_sync(raw, changes)
    raw.execute(
        "UPDATE cancel_requests SET handled_at = ? WHERE execution_id = ? AND handled_at IS NULL", (at, execution_id)
    )
    insert_logs_sync(raw, [
        LogEntry(execution_id, None, LogLevel.WARN, "scheduler",
                 f"Execution cancelled while queued ({cause}); {len(tasks)} task(s) never started",
                 {"reason_code": Reason.EXECUTION_CANCELLED.value, "cancelled_by": by}, at),
    ])
    return True


class SqliteQueue:
    """The `Queue` port on one SQLite database (see `storage.ports`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def enqueue(self, new: NewExecution, tasks: Sequence[NewTaskRun], *, at: int | None = None) -> None:
        await self.db.write(_enqueue, new, tasks, now_ms() if at is None else at)

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
