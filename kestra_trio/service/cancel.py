"""Asking for an execution to stop: `execution cancel` and `POST /executions/{id}/cancel` alike.

A running execution is stopped by the engine that runs it (its cancel watcher reads the
request row). A QUEUED execution that no live engine holds ends here and now, never having
run; one pinned to a live `kestra-trio run` is left to that process, which is about to claim it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kestra_trio.query.liveness import engine_gone
from kestra_trio.storage.db import Database
from kestra_trio.storage.executions import ExecutionStore
from kestra_trio.storage.queue import SqliteQueue
from kestra_trio.storage.rows import ExecutionRow


@dataclass(frozen=True)
class CancelAnswer:
    #: the execution as it was when the request was recorded
    execution: ExecutionRow
    #: a new request was recorded (False: it was already requested, or it had finished)
    created: bool
    #: it is not finished and its engine is known to be gone: nobody will act on the request
    #: until recovery (False for a finished execution: its engine leaving is the normal end)
    engine_gone: bool


async def request_cancel(db: Database, execution_id: str, *, by: str, reason: str | None) -> CancelAnswer:
    """Record a cancel request for `execution_id` (an exact id) and end it at once if it is
    QUEUED with no live engine holding it.

    Raises:
        ExecutionNotFound: no such execution.
    """
    execution, created = await ExecutionStore(db).request_cancel(execution_id, by, reason)
    gone = not execution.is_terminal and engine_gone(execution.engine_pid, execution.engine_host)
    if execution.state == "QUEUED" and (execution.engine_pid is None or gone):
        await SqliteQueue(db).cancel_queued(execution_id, by, reason or "cancelled by request")
    return CancelAnswer(execution, created, gone)
