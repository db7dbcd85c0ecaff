"""Pure: task runs and attempts → timeline rows (offsets from the execution start, durations).

No I/O and no clock: the caller passes `now_ms`, which is where running tasks end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from kestra_trio.storage.rows import AttemptRow, ExecutionRow, TaskRunRow

_TERMINAL = frozenset({"SUCCESS", "FAILED", "CANCELLED", "SKIPPED"})


@dataclass(frozen=True, slots=True)
class Span:
    """One attempt, as offsets (ms) from the timeline origin."""

    start: int
    end: int
    state: str
    running: bool = False


@dataclass(frozen=True, slots=True)
class TimelineRow:
    task_id: str
    state: str
    start: int | None  # offset (ms) from the origin; None: never started
    end: int | None  # offset (ms); for a running task, `now`
    running: bool
    spans: tuple[Span, ...]  # attempts; gaps between them are backoff waits

    @property
    def duration(self) -> int | None:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Timeline:
    origin_ms: int  # wall-clock time (Unix ms) of offset 0: the execution start
    span: int  # ms from the origin to the last end (at least 1)
    running: bool  # the execution is not terminal: bars end at now
    rows: tuple[TimelineRow, ...]


def build_timeline(
    execution: ExecutionRow,
    tasks: Sequence[TaskRunRow],
    attempts: Mapping[str, Sequence[AttemptRow]] | Iterable[AttemptRow],
    now_ms: int,
) -> Timeline:
    """Rows in task (file) order. A task without attempt rows is one span from its start to its end."""
    by_task: dict[str, list[AttemptRow]]
    if isinstance(attempts, Mapping):
        by_task = {k: list(v) for k, v in attempts.items()}
    else:
        by_task = {}
        for attempt in attempts:
            by_task.setdefault(attempt.task_id, []).append(attempt)

    starts = [t.started_at for t in tasks if t.started_at is not None]
    origin = execution.started_at or (min(starts) if starts else execution.created_at)
    execution_running = execution.state not in _TERMINAL
    rows: list[TimelineRow] = []
    last = 0
    for task in tasks:
        running = task.state == "RUNNING"
        if task.started_at is None:
            rows.append(TimelineRow(task.task_id, task.state, None, None, False, ()))
            continue
        end_abs = task.ended_at if task.ended_at is not None else (now_ms if task.state not in _TERMINAL else None)
        if end_abs is None:  # terminal without an end time: fall back to the last attempt or the start
            ends = [a.ended_at for a in by_task.get(task.task_id, ()) if a.ended_at is not None]
            end_abs = max(ends) if ends else task.started_at
        start = max(0, task.started_at - origin)
        end = max(start, end_abs - origin)
        spans: list[Span] = []
        for attempt in by_task.get(task.task_id, ()):
            a_running = attempt.ended_at is None and attempt.state == "RUNNING" and running
            a_end_abs = attempt.ended_at if attempt.ended_at is not None else (now_ms if a_running else end_abs)
            a_start = max(0, attempt.started_at - origin)
            spans.append(Span(a_start, max(a_start, a_end_abs - origin), attempt.state, a_running))
        if not spans:
            spans.append(Span(start, end, task.state, running))
        rows.append(TimelineRow(task.task_id, task.state, start, end, running, tuple(spans)))
        last = max(last, end)
    if execution.ended_at is not None:
        last = max(last, execution.ended_at - origin)
    elif execution_running:
        last = max(last, now_ms - origin)
    return Timeline(origin, max(1, last), execution_running, tuple(rows))
