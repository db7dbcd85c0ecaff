"""ExecutionInspector: a read-only snapshot of one execution for `execution inspect`.

The snapshot is read in ONE read transaction with a fixed number of queries whatever the
task count (execution, task runs, attempts, audit events, and the last log lines of one
task when asked); the log entry count comes from `executions.log_entry_count`, which the
log writer keeps exact in the same transaction as the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from kestra_trio.errors import ExecutionNotFound
from kestra_trio.observability.records import now_ms
from kestra_trio.storage.db import Database
from kestra_trio.storage.executions import ExecutionStore
from kestra_trio.storage.reads import snapshot_rows
from kestra_trio.storage.rows import AttemptRow, AuditRow, ExecutionRow, LogRow, TaskRunRow
from kestra_trio.storage.sandbox import SandboxRows, sandbox_rows

TERMINAL = frozenset({"SUCCESS", "FAILED", "CANCELLED"})


@dataclass(frozen=True)
class ExecutionSnapshot:
    execution: ExecutionRow
    tasks: list[TaskRunRow]
    attempts: list[AttemptRow]
    audit: list[AuditRow]
    task_logs: list[LogRow] = field(default_factory=list)  # last lines of `focus_task`
    focus_task: str | None = None
    taken_at_ms: int = 0
    sandbox: SandboxRows | None = None  # restricted mode: each task's sandbox and the refusals

    @property
    def log_count(self) -> int:
        return self.execution.log_entry_count

    @property
    def running(self) -> bool:
        return self.execution.state not in TERMINAL

    @cached_property
    def attempts_by_task(self) -> dict[str, list[AttemptRow]]:
        result: dict[str, list[AttemptRow]] = {}
        for attempt in self.attempts:
            result.setdefault(attempt.task_id, []).append(attempt)
        return result

    @cached_property
    def task_states(self) -> dict[str, str]:
        return {t.task_id: t.state for t in self.tasks}

    def task(self, task_id: str) -> TaskRunRow | None:
        for task in self.tasks:
            if task.task_id == task_id:
                return task
        return None


class TaskNotFound(LookupError):
    def __init__(self, execution_id: str, task_id: str) -> None:
        self.execution_id = execution_id
        self.task_id = task_id
        super().__init__(f"Task not found: {task_id} in execution {execution_id}")


class ExecutionInspector:
    """Read-only: never writes, never talks to the engine."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def snapshot(
        self, execution_id: str, *, task_id: str | None = None, log_tail: int = 20, with_values: bool = True
    ) -> ExecutionSnapshot:
        """Resolve `execution_id` (exact or unique prefix) and read the whole snapshot
        (`with_values=False`: without the tasks' inputs and outputs).

        Raises:
            ExecutionNotFound: no such execution (or the prefix is ambiguous).
            TaskNotFound: `task_id` is not a task of this execution.
        """
        resolved = await ExecutionStore(self.db).resolve_id(execution_id)
        rows = await self.db.read(snapshot_rows, resolved, task_id, log_tail, now_ms(), with_values)
        if rows is None:  # deleted between the two reads (retention)
            raise ExecutionNotFound(execution_id)
        snapshot = ExecutionSnapshot(
            rows.execution, rows.tasks, rows.attempts, rows.audit, rows.task_logs, task_id, rows.taken_at_ms,
            await self.db.read(sandbox_rows, resolved),
        )
        if task_id is not None and snapshot.task(task_id) is None:
            raise TaskNotFound(resolved, task_id)
        return snapshot
