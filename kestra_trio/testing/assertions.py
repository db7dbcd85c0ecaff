"""Assertions whose failure says what happened: expected vs actual states as a small table,
with each differing task's attempts, error and last log lines. Plain text (pytest prints it
as is); pure functions over the results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kestra_trio.testing.results import ActionResult, ExecutionResult, TaskRecord

#: characters of an error message / a log line shown in a failure message
SHOWN_CHARS = 200
SHOWN_LOG_CHARS = 120
#: log lines shown per task that differs
SHOWN_LOG_LINES = 3


def _short(text: Any, limit: int = SHOWN_CHARS) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns, two spaces apart; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]

    def line(cells: Sequence[str]) -> str:
        padded = [str(c).ljust(w) for c, w in zip(cells, widths, strict=False)]
        return "  " + "  ".join([*padded, str(cells[-1])]).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _why(task: TaskRecord | None) -> str:
    if task is None:
        return ""
    error = task.error or {}
    message = error.get("message") or task.row.message or ""
    reason = task.reason_code or ""
    return _short(f"{reason}: {message}" if message and reason else reason or message)


def _attempts(task: TaskRecord | None) -> str:
    return "" if task is None else f"{task.attempt_count}/{task.row.max_attempts}"


def _log_tail(result: ExecutionResult, task_ids: Sequence[str]) -> list[str]:
    rows = [
        [task_id, e.level, e.source, _short(e.message, SHOWN_LOG_CHARS)]
        for task_id in task_ids if task_id in result.tasks
        for e in result.logs(task_id)[-SHOWN_LOG_LINES:]
    ]
    return table(["task", "level", "source", "message"], rows) if rows else []


def _headline(result: ExecutionResult) -> str:
    return f"execution {result.id} of {result.snapshot.execution.workflow_id}: {result.state} [{result.reason_code}]"


def states_report(result: ExecutionResult, expected: Mapping[str, str]) -> str | None:
    """None when every task in `expected` is in its expected state; else the failure message."""
    tasks = result.tasks
    unknown = [t for t in expected if t not in tasks]
    wanted = {t: str(s).upper() for t, s in expected.items()}
    differing = [t for t, s in wanted.items() if t not in tasks or tasks[t].state != s]
    if not differing:
        return None
    rows = []
    for task_id in [*tasks, *unknown]:
        if task_id not in wanted:
            continue
        task = tasks.get(task_id)
        actual = task.state if task is not None else "(no such task)"
        mark = "✗" if task_id in differing else "✓"
        rows.append([mark, task_id, wanted[task_id], actual, _attempts(task), _why(task) if mark == "✗" else ""])
    lines = [
        f"task states differ from what the test expected ({len(differing)} of {len(wanted)})",
        _headline(result),
        "",
        *table(["", "task", "expected", "actual", "attempts", "reason: error"], rows),
    ]
    if unknown:
        lines += ["", f"  the workflow has no task {', '.join(map(repr, unknown))}; its tasks: {', '.join(tasks)}"]
    tail = _log_tail(result, differing)
    if tail:
        lines += ["", "last log lines of the tasks that differ:", *tail]
    return "\n".join(lines)


def assert_states(result: ExecutionResult, expected: Mapping[str, str]) -> None:
    """Every task named in `expected` ended in that state (`{"fetch": "SUCCESS", ...}`)."""
    __tracebackhide__ = True  # pytest shows the test's line, not ours
    report = states_report(result, expected)
    if report is not None:
        raise AssertionError(report)


def assert_succeeded(result: ExecutionResult) -> None:
    """The execution ended SUCCESS; otherwise the message shows every task, and why the failed ones failed."""
    __tracebackhide__ = True  # pytest shows the test's line, not ours
    if result.state == "SUCCESS":
        return
    rows = [
        ["✓" if t.state in ("SUCCESS", "SKIPPED") else "✗", t.id, t.state, _attempts(t),
         "" if t.state in ("SUCCESS", "SKIPPED") else _why(t)]
        for t in result.tasks.values()
    ]
    differing = [row[1] for row in rows if row[0] == "✗"]
    lines = [
        "the execution did not succeed",
        _headline(result),
        "",
        *table(["", "task", "state", "attempts", "reason: error"], rows),
    ]
    tail = _log_tail(result, differing)
    if tail:
        lines += ["", "last log lines of the tasks that did not succeed:", *tail]
    raise AssertionError("\n".join(lines))


def assert_action_ok(result: ActionResult) -> None:
    """The action returned outputs; otherwise its error, exit code, stderr tail and last log lines."""
    __tracebackhide__ = True  # pytest shows the test's line, not ours
    if result.ok:
        return
    error = result.error or {}
    lines = [
        f"action {result.task_type} failed [{result.reason_code}], exit code {result.exit_code}",
        f"  error: {_short(error.get('message', ''))}",
    ]
    stderr_tail = error.get("stderr_tail") or []
    if stderr_tail:
        lines += ["  stderr (last lines):", *(f"    {_short(line)}" for line in stderr_tail[-SHOWN_LOG_LINES:])]
    if result.entries:
        rows = [[e.level, e.source, _short(e.message, SHOWN_LOG_CHARS)] for e in result.entries[-SHOWN_LOG_LINES:]]
        lines += ["  last log lines:", *("  " + line for line in table(["level", "source", "message"], rows))]
    raise AssertionError("\n".join(lines))
