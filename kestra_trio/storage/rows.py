"""Rows as read back from the database: plain frozen values, built by `from_row`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kestra_trio.state.states import TERMINAL

#: the terminal state names, as stored
TERMINAL_STATES = frozenset(state.value for state in TERMINAL)


#: columns read back as integers; every other column is read back as text
_INTEGER_COLUMNS = frozenset(
    {
        "id", "timestamp", "created_at", "started_at", "ended_at", "updated_at", "timeout_ms",
        "log_entry_count", "log_entries_lost", "task_count", "engine_pid", "position", "attempt_count", "max_attempts",
        "duration_ms", "number", "exit_code", "pid", "claimed_at", "heartbeat_at", "workflow_revision",
        "revision", "applied_at", "enabled",
    }
)


def typed(columns: str, *, text: frozenset[str] = frozenset()) -> str:
    """A SELECT list that reads each column as the type our code expects, whatever a hand-edited
    or foreign-written row holds (a BLOB message, a text timestamp): SQLite CASTs, so a broken
    value shows up as a value (or a one-line decode error), never as a crash in formatting."""
    names = [c.strip() for c in columns.split(",")]
    return ", ".join(
        # no `AS name`: ORDER BY / WHERE must keep meaning the indexed table column
        f"CAST({n} AS INTEGER)" if n.rsplit(".", 1)[-1] in _INTEGER_COLUMNS and n not in text else f"CAST({n} AS TEXT)"
        for n in names
    )


def _json(text: str | None, default: Any = None, kind: type = dict) -> Any:
    """A JSON column, always of the expected `kind` (a hand-edited row must not crash a
    reader that relies on it): anything else is kept, as text, under `_unreadable`."""
    if text is None:
        return default
    try:
        value = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        value = None
    if isinstance(value, dict) and kind is dict:
        return value
    if isinstance(value, list) and kind is list:  # a list of ids: text items
        return [item if isinstance(item, str) else json.dumps(item) for item in value]
    return {"_unreadable": text} if kind is dict else [text]


#: executions.id is the text id (logs and audit events have integer ids)
EXECUTION_TEXT_ID = frozenset({"id"})
EXECUTION_COLUMNS = (
    "id, workflow_id, namespace, state, reason_code, message, trigger_type, inputs, workflow_path, "
    "created_at, started_at, ended_at, updated_at, timeout_ms, log_entry_count, task_count, "
    "failed_task_id, cancelled_by, engine_pid, engine_host, queue, worker_id, claimed_at, heartbeat_at, "
    "workflow_revision, trigger_data, log_entries_lost"
)
#: the SELECT list for EXECUTION_COLUMNS, each column read as its expected type
EXECUTION_SELECT = typed(EXECUTION_COLUMNS, text=EXECUTION_TEXT_ID)


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    id: str
    workflow_id: str
    namespace: str
    state: str
    reason_code: str | None
    message: str | None
    trigger_type: str
    inputs: dict[str, Any] | None
    workflow_path: str | None
    created_at: int
    started_at: int | None
    ended_at: int | None
    updated_at: int
    timeout_ms: int | None
    log_entry_count: int
    task_count: int
    failed_task_id: str | None
    cancelled_by: str | None
    engine_pid: int | None
    engine_host: str | None
    queue: str = "default"  # where it waited to be claimed
    worker_id: str | None = None  # the service that claimed it
    claimed_at: int | None = None
    heartbeat_at: int | None = None
    workflow_revision: int | None = None  # the registry revision it ran
    trigger_data: dict[str, Any] | None = None  # what started it (cron time, webhook body, ...); masked
    #: entries that could not be written (the database refused writes until the engine gave up)
    log_entries_lost: int = 0

    @classmethod
    def from_row(cls, row: tuple) -> ExecutionRow:
        values = list(row)
        values[7] = _json(values[7])
        values[25] = _json(values[25])
        return cls(*values)

    @property
    def trigger(self) -> dict[str, Any]:
        """What templates see as `trigger` (at least its type)."""
        return {"type": self.trigger_type, **(self.trigger_data or {})}

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


TASK_RUN_COLUMNS = (
    "execution_id, task_id, position, type, needs, state, reason_code, message, attempt_count, "
    "max_attempts, timeout_ms, inputs, outputs, error, started_at, ended_at, duration_ms, updated_at"
)
#: the SELECT list for TASK_RUN_COLUMNS, each column read as its expected type
TASK_RUN_SELECT = typed(TASK_RUN_COLUMNS)
#: the same without the inputs and outputs (read as NULL): a view that shows none of them
#: need not load and decode what may be megabytes per task
TASK_RUN_SELECT_WITHOUT_VALUES = TASK_RUN_SELECT.replace("CAST(inputs AS TEXT)", "NULL").replace(
    "CAST(outputs AS TEXT)", "NULL"
)


@dataclass(frozen=True, slots=True)
class TaskRunRow:
    execution_id: str
    task_id: str
    position: int
    type: str
    needs: list[str]
    state: str
    reason_code: str | None
    message: str | None
    attempt_count: int
    max_attempts: int
    timeout_ms: int | None
    inputs: dict[str, Any] | None
    outputs: dict[str, Any] | None
    error: dict[str, Any] | None
    started_at: int | None
    ended_at: int | None
    duration_ms: int | None
    updated_at: int

    @classmethod
    def from_row(cls, row: tuple) -> TaskRunRow:
        values = list(row)
        values[4] = _json(values[4], [], list)
        for index in (11, 12, 13):
            values[index] = _json(values[index])
        return cls(*values)


ATTEMPT_COLUMNS = (
    "execution_id, task_id, number, state, reason_code, message, exit_code, signal, pid, "
    "started_at, ended_at, duration_ms"
)
#: the SELECT list for ATTEMPT_COLUMNS, each column read as its expected type
ATTEMPT_SELECT = typed(ATTEMPT_COLUMNS)


@dataclass(frozen=True, slots=True)
class AttemptRow:
    execution_id: str
    task_id: str
    number: int
    state: str
    reason_code: str | None
    message: str | None
    exit_code: int | None
    signal: str | None
    pid: int | None
    started_at: int
    ended_at: int | None
    duration_ms: int | None

    @classmethod
    def from_row(cls, row: tuple) -> AttemptRow:
        return cls(*row)


LOG_COLUMNS = "id, execution_id, task_id, timestamp, level, source, message, metadata"
#: the SELECT list for LOG_COLUMNS, each column read as its expected type
LOG_SELECT = typed(LOG_COLUMNS)


@dataclass(frozen=True, slots=True)
class LogRow:
    id: int
    execution_id: str
    task_id: str | None
    timestamp: int
    level: str
    source: str
    message: str
    metadata: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: tuple) -> LogRow:
        values = list(row)
        values[7] = _json(values[7])
        return cls(*values)


AUDIT_COLUMNS = "id, execution_id, event_type, timestamp, metadata"
#: the SELECT list for AUDIT_COLUMNS, each column read as its expected type
AUDIT_SELECT = typed(AUDIT_COLUMNS)


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    execution_id: str
    event_type: str
    timestamp: int
    metadata: dict[str, Any]

    @classmethod
    def from_row(cls, row: tuple) -> AuditRow:
        values = list(row)
        values[4] = _json(values[4], {})
        return cls(*values)
