"""What `kestra-trio run` shows: pure functions from progress events / results to text.

A TTY gets a live table (one row per task, updated in place); a pipe gets one plain line
per task event. Both are built here from data; the Console lives in cli/console.py.
"""

from __future__ import annotations

import json
import shlex
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from kestra_trio.engine.progress import ProgressEvent
from kestra_trio.model.durations import format_duration
from kestra_trio.cli.formatting import literal as for_terminal
from kestra_trio.state.states import State

if TYPE_CHECKING:
    from rich.console import RenderableType

    from kestra_trio.engine.context import ExecutionResult
    from kestra_trio.model.workflow import Workflow

STATE_STYLE = {
    "SUCCESS": "kt.state.success",
    "FAILED": "kt.state.failed",
    "RUNNING": "kt.state.running",
    "PENDING": "kt.state.pending",
    "QUEUED": "kt.state.queued",
    "WAITING": "kt.state.waiting",
    "CANCELLED": "kt.state.cancelled",
}


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def indented(text: str, indent: str = "    ") -> str:
    """Plugin text shown literally; its continuation lines indented so that no line of it
    can pass for one of ours (`Execution … SUCCESS` at column 0)."""
    return for_terminal(text).replace("\n", "\n" + indent)


def created_line(execution_id: str, workflow: Workflow, db: str | None = None) -> str:
    """`db`: the --db the run was given, repeated so the hint works when pasted elsewhere."""
    return (
        f"Execution {execution_id} created: workflow {workflow.id} ({_plural(len(workflow.tasks), 'task')}). "
        f"Follow it with: kestra-trio execution logs {execution_id} --follow{_db_option(db)}"
    )


def progress_line(event: ProgressEvent) -> str | None:
    """One plain line per task event (piped output); None for events not worth a line."""
    if event.task_id is None:
        return None
    parts = [_clock(event.at), f"{event.state.value:<9}", event.task_id]
    if event.state == State.RUNNING:
        parts.append(f"attempt {event.attempt}/{event.max_attempts}" if event.max_attempts > 1 else "")
    if event.reason and event.state not in (State.RUNNING, State.SUCCESS):
        parts.append(f"[{event.reason}]")
    if event.message and event.state != State.SUCCESS:
        parts.append(indented(event.message))
    return "  ".join(p for p in parts if p)


@dataclass
class TaskRow:
    task_id: str
    type: str
    state: State
    attempt: int = 0
    max_attempts: int = 1
    started: float | None = None  # monotonic seconds, for the live duration
    ended: float | None = None
    note: str = ""


@dataclass
class LiveModel:
    """The live view's state, fed by progress events."""

    rows: dict[str, TaskRow] = field(default_factory=dict)

    @classmethod
    def for_workflow(cls, workflow: Workflow) -> LiveModel:
        return cls(
            {
                t.id: TaskRow(t.id, t.type, State.WAITING if t.needs else State.PENDING, max_attempts=t.retry.max_attempts)
                for t in workflow.tasks
            }
        )

    def apply(self, event: ProgressEvent, now: float | None = None) -> None:
        if event.task_id is None or event.task_id not in self.rows:
            return
        now = time.monotonic() if now is None else now
        row = self.rows[event.task_id]
        row.state = event.state
        if event.attempt:
            row.attempt = event.attempt
        if event.state == State.RUNNING and row.started is None:
            row.started = now
        if event.state.is_terminal:
            row.ended = now
        row.note = for_terminal(event.message or "") if event.state != State.SUCCESS else ""


def live_table(model: LiveModel, now: float | None = None, limit: int = 40) -> RenderableType:
    from rich.table import Table
    from rich.text import Text

    now = time.monotonic() if now is None else now
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("task", "state", "attempt", "duration", "note"):
        table.add_column(name, no_wrap=name != "note", overflow="fold")
    rows = list(model.rows.values())
    active = [r for r in rows if r.state in (State.RUNNING, State.WAITING) and r.started is not None]
    shown = rows if len(rows) <= limit else (active + [r for r in rows if r.state.is_terminal])[-limit:]
    for row in shown:
        duration = ""
        if row.started is not None:
            duration = format_duration((row.ended or now) - row.started)
        attempt = f"{row.attempt}/{row.max_attempts}" if row.attempt else ""
        table.add_row(
            Text(row.task_id),
            Text(row.state.value, style=STATE_STYLE.get(row.state.value, "")),
            attempt,
            duration,
            Text(row.note.split("; ")[0][:160]),  # the short why; inspect/logs have the rest
        )
    counts = Counter(r.state.value for r in rows)
    caption = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if len(rows) > len(shown):
        caption += f" (showing {len(shown)} of {len(rows)} tasks)"
    table.caption = caption
    return table


def _db_option(db: str | None) -> str:
    return f" --db {shlex.quote(for_terminal(db))}" if db else ""


def summary_lines(result: ExecutionResult, db: str | None = None) -> list[str]:
    counts = Counter(t.state.value for t in result.tasks.values())
    by_state = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    lines = [
        f"Execution {result.execution_id} {result.state.value} in {format_duration(result.duration_ms / 1000)}"
        + (f" [{result.reason_code}]" if result.state != State.SUCCESS else "")
        + f" - {_plural(len(result.tasks), 'task')}: {by_state}"
    ]
    if result.message and result.state != State.SUCCESS:
        lines.append(f"  reason: {indented(result.message)}")
    if result.log_entries_lost:
        unrecorded = (
            f"; {result.lost_unrecorded:,} of them are not counted in the database either" if result.lost_unrecorded else ""
        )
        lines.append(f"  log entries lost: {result.log_entries_lost:,} (the database refused writes{unrecorded})")
    if result.failed_task_id and result.error:
        error = result.error
        details = []
        if error.get("exit_code") is not None:
            details.append(f"exit code {error['exit_code']}")
        if error.get("signal"):
            details.append(f"signal {error['signal']}")
        lines.append(
            f"  failed task: {result.failed_task_id}: {indented(str(error.get('message', '')))}"
            + (f" ({', '.join(details)})" if details else "")
        )
        for tail in (error.get("stderr_tail") or [])[-5:]:
            lines.append(f"    | {indented(str(tail), '    | ')}")
    if result.state != State.SUCCESS:
        lines.append(f"  inspect: kestra-trio execution inspect {result.execution_id}{_db_option(db)}")
    return lines


def result_json(result: ExecutionResult) -> str:
    payload: dict[str, Any] = {
        "execution_id": result.execution_id,
        "workflow_id": result.workflow_id,
        "state": result.state.value,
        "reason_code": result.reason_code,
        "message": result.message,
        "duration_ms": result.duration_ms,
        "failed_task_id": result.failed_task_id,
        "error": result.error,
        "log_entries_lost": result.log_entries_lost,
        "state_stored": result.state_stored,
        "tasks": {
            tid: {
                "state": t.state.value,
                "reason_code": t.reason_code,
                "attempts": t.attempts,
                "duration_ms": t.duration_ms,
                "outputs": t.outputs,
                "error": t.error,
            }
            for tid, t in result.tasks.items()
        },
    }
    return json.dumps(payload, ensure_ascii=False, indent=2, default=str)


def database_error_line(result: ExecutionResult) -> str:
    """The one line a run that could not store everything ends with (exit code 3)."""
    line = f"database error ({for_terminal(result.database_error or 'unknown error')})"
    if result.log_entries_lost:
        line += f": {result.log_entries_lost:,} log entries of execution {result.execution_id} are lost"
    else:
        line += f" during execution {result.execution_id}"
    if not result.state_stored:
        return line + (
            "; its final state could not be stored either: it shows RUNNING until the next `kestra-trio run` "
            "on this host marks it FAILED [ENGINE_LOST]"
        )
    if result.lost_unrecorded:
        line += f" ({result.lost_unrecorded:,} of them not even counted in the database)"
    return line + f"; it is recorded {result.state.value} [{result.reason_code}]"
