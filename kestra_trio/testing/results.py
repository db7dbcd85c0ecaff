"""What `kt.run` and `kt.action` return: the records `execution inspect` shows, read back from
the database after the execution ended (not a parallel model kept by the harness)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kestra_trio.inspection.inspector import ExecutionSnapshot
from kestra_trio.observability.records import LEVEL_ORDER, LogEntry, LogLevel
from kestra_trio.query.documents import snapshot_document
from kestra_trio.storage.rows import AttemptRow, AuditRow, LogRow, TaskRunRow


def _levels_from(level: str | LogLevel | None) -> set[str] | None:
    """`level="WARN"` means WARN and above, as `execution logs --level` does."""
    if level is None:
        return None
    try:
        floor = LEVEL_ORDER[LogLevel(str(level).upper())]
    except ValueError:
        raise ValueError(f"unknown log level {level!r}; one of {', '.join(LogLevel)}") from None
    return {lvl.value for lvl, order in LEVEL_ORDER.items() if order >= floor}


def select_logs(
    entries: Sequence[Any], *, task: str | None = None, level: str | None = None, source: str | None = None,
    contains: str | None = None,
) -> list[Any]:
    """Entries of one task, at `level` or above, whose source starts with `source`
    (`"plugin"`, `"plugin:core/http.request"`, `"worker"`, `"scheduler"`)."""
    levels = _levels_from(level)
    return [
        e for e in entries
        if (task is None or e.task_id == task)
        and (levels is None or str(e.level) in levels)
        and (source is None or e.source.startswith(source))
        and (contains is None or contains in e.message)
    ]


@dataclass(frozen=True)
class TaskRecord:
    """One task run as stored (`inspect --task ID`), with its attempts."""

    row: TaskRunRow
    attempts: list[AttemptRow]

    @property
    def id(self) -> str:
        return self.row.task_id

    @property
    def state(self) -> str:
        return self.row.state

    @property
    def reason_code(self) -> str | None:
        return self.row.reason_code

    @property
    def outputs(self) -> dict[str, Any] | None:
        return self.row.outputs

    @property
    def inputs(self) -> dict[str, Any] | None:
        return self.row.inputs

    @property
    def error(self) -> dict[str, Any] | None:
        return self.row.error

    @property
    def attempt_count(self) -> int:
        return self.row.attempt_count

    @property
    def duration_ms(self) -> int | None:
        return self.row.duration_ms

    def __repr__(self) -> str:
        return f"<task {self.id} {self.state} [{self.reason_code}] attempts={self.attempt_count}>"


@dataclass(frozen=True)
class ExecutionResult:
    """A finished execution as `execution inspect` reads it, plus its log and audit trail."""

    snapshot: ExecutionSnapshot
    log_rows: list[LogRow]

    @property
    def id(self) -> str:
        return self.snapshot.execution.id

    execution_id = id

    @property
    def state(self) -> str:
        return self.snapshot.execution.state

    @property
    def reason_code(self) -> str | None:
        return self.snapshot.execution.reason_code

    @property
    def message(self) -> str | None:
        return self.snapshot.execution.message

    @property
    def duration_ms(self) -> int | None:
        execution = self.snapshot.execution
        if execution.started_at is None or execution.ended_at is None:
            return None
        return execution.ended_at - execution.started_at

    @property
    def tasks(self) -> dict[str, TaskRecord]:
        by_task = self.snapshot.attempts_by_task
        return {t.task_id: TaskRecord(t, by_task.get(t.task_id, [])) for t in self.snapshot.tasks}

    @property
    def states(self) -> dict[str, str]:
        """Task id → state, in workflow order."""
        return dict(self.snapshot.task_states)

    def task(self, task_id: str) -> TaskRecord:
        tasks = self.tasks
        if task_id not in tasks:
            raise KeyError(f"no task {task_id!r} in execution {self.id}; its tasks: {', '.join(tasks) or '(none)'}")
        return tasks[task_id]

    def logs(
        self, task: str | None = None, *, level: str | None = None, source: str | None = None, contains: str | None = None
    ) -> list[LogRow]:
        """Log entries (`.task_id`, `.level`, `.source`, `.message`, `.metadata`, `.timestamp`), oldest first."""
        if task is not None:
            self.task(task)  # a typo in a task id is an error, not an empty list
        return select_logs(self.log_rows, task=task, level=level, source=source, contains=contains)

    @property
    def audit(self) -> list[AuditRow]:
        return list(self.snapshot.audit)

    def document(self) -> dict[str, Any]:
        """The JSON object `execution inspect --json` prints."""
        return snapshot_document(self.snapshot)

    # assertions (readable failure output: see `kestra_trio.testing.assertions`)
    def assert_states(self, expected: Mapping[str, str] | None = None, /, **by_task: str) -> None:
        __tracebackhide__ = True  # pytest shows the test's line, not ours
        from kestra_trio.testing.assertions import assert_states

        assert_states(self, {**(expected or {}), **by_task})

    def assert_succeeded(self) -> None:
        __tracebackhide__ = True  # pytest shows the test's line, not ours
        from kestra_trio.testing.assertions import assert_succeeded

        assert_succeeded(self)

    def __repr__(self) -> str:
        return f"<execution {self.id} {self.state} [{self.reason_code}] {self.states}>"


@dataclass(frozen=True)
class ActionResult:
    """One plugin action run in isolation (`kt.action`): what the engine would record for one attempt."""

    task_type: str
    ok: bool
    outputs: dict[str, Any] | None
    exit_code: int | None
    reason_code: str | None
    error: dict[str, Any] | None
    entries: list[LogEntry] = field(default_factory=list)

    def logs_of(self, *, level: str | None = None, source: str | None = None, contains: str | None = None) -> list[LogEntry]:
        return select_logs(self.entries, level=level, source=source, contains=contains)

    @property
    def logs(self) -> list[LogEntry]:
        """Every entry the plugin wrote (`.level`, `.source`, `.message`, `.metadata`), secrets masked."""
        return list(self.entries)

    def assert_ok(self) -> None:
        __tracebackhide__ = True  # pytest shows the test's line, not ours
        from kestra_trio.testing.assertions import assert_action_ok

        assert_action_ok(self)

    def __repr__(self) -> str:
        outcome = "ok" if self.ok else f"failed [{self.reason_code}]"
        return f"<action {self.task_type} {outcome} exit_code={self.exit_code} outputs={json.dumps(self.outputs)}>"
