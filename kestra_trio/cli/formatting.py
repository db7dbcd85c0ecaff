"""PURE formatting for the `execution` commands: rows → strings, rich renderables, JSON objects.

Nothing here sees a Console or a stream. Two speeds:
- log lines are plain `str` (`LogLineFormatter`, `log_json`): `execution logs` prints up to a
  million of them, so no rich object is built per line;
- inspect / list output are rich `Text` / `Table` objects styled with the names in `theme.py`.

Untrusted text (log messages, sources, error messages, stderr tails, input values) only ever
becomes `Text(...)` or goes through `literal()`: it is never parsed as markup, and terminal
control characters are shown as visible escapes instead of being executed.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from kestra_trio.cli.theme import state_style
from kestra_trio.query.documents import LogJsonFormatter as LogJsonFormatter
from kestra_trio.observability.records import iso_ms as iso_ms
from kestra_trio.query.documents import duration_of
from kestra_trio.query.documents import execution_list_document as execution_list_json
from kestra_trio.query.documents import log_json as log_json
from kestra_trio.query.documents import log_json_object as log_json_object
from kestra_trio.query.documents import log_row_json as log_row_json
from kestra_trio.query.documents import snapshot_document as snapshot_json
from kestra_trio.storage.rows import TERMINAL_STATES
from kestra_trio.model.durations import format_duration as _format_seconds
from kestra_trio.query.log_filters import INVALID_LEVEL as INVALID_LEVEL
from kestra_trio.query.log_filters import INVALID_TIME as INVALID_TIME
from kestra_trio.query.log_filters import LEVEL_ALIASES as LEVEL_ALIASES
from kestra_trio.query.log_filters import LOG_LEVELS as LOG_LEVELS
from kestra_trio.query.log_filters import parse_levels as parse_levels
from kestra_trio.query.log_filters import parse_since as parse_since

if TYPE_CHECKING:
    from kestra_trio.inspection.inspector import ExecutionSnapshot
    from kestra_trio.inspection.timeline import Timeline
    from kestra_trio.storage.rows import AttemptRow, AuditRow, ExecutionRow, LogRow, TaskRunRow

TRUNCATE_AT = 200
TRUNCATED = "... (truncated)"
SUMMARY_THRESHOLD = 50

# --------------------------------------------------------------------------- literal text


def _escape_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]:
        if code not in (0x09, 0x0A):  # tab and newline are layout, kept
            table[code] = f"\\x{code:02x}"
    table[0x0D] = "\\r"
    # bidirectional overrides/isolates can make text display differently from what it is
    for code in [0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]:
        table[code] = f"\\u{code:04x}"
    # line/paragraph separators: some terminals and editors break the line there, so a
    # plugin could start a line that looks like one of ours without a newline
    for code in (0x2028, 0x2029):
        table[code] = f"\\u{code:04x}"
    return table


_ESCAPES = _escape_table()


def literal(text: str) -> str:
    """`text` made safe to show on a terminal, character for character otherwise.

    C0/C1 control characters (except tab and newline), DEL and bidi overrides become visible
    escapes (`ESC` → `\\x1b`, `CR` → `\\r`, `NUL` → `\\x00`), so an ANSI sequence or a carriage
    return in plugin output is shown, not executed. Markup-like text (`[bold]`, `[/x]`) is
    untouched: it is printed as plain text, never parsed.
    """
    if text.isprintable():  # the common case, checked in C
        return text
    return text.translate(_ESCAPES)


_LINE_ESCAPES = {**_ESCAPES, 0x09: "\\t", 0x0A: "\\n"}


def literal_line(text: str) -> str:
    """`literal()` for text that must stay on ONE line: an argument or a stored id echoed in a message.

    Like `literal()`, and tab, newline and the Unicode line/paragraph separators become
    visible escapes too (`\\t`, `\\n`, `\\u2028`), so `Execution not found: <id>` is one line
    whatever the id holds. Printable text is returned unchanged.
    """
    if text.isprintable():
        return text
    return text.translate(_LINE_ESCAPES)


# --------------------------------------------------------------------------- time and durations


def clock_ms(ms: int | None) -> str:
    """Unix ms → `10:15:30.123` (UTC time of day), for table columns; `-` when unknown."""
    if ms is None:
        return "-"
    seconds, millis = divmod(int(ms), 1000)
    return f"{time.strftime('%H:%M:%S', time.gmtime(seconds))}.{millis:03d}"


def format_duration_ms(ms: int | float | None) -> str:
    """`500ms`, `2.5s`, `12s`, `1m 30s`, `2h 5m`, `3d 4h` (model.durations); `-` when unknown."""
    if ms is None:
        return "-"
    return _format_seconds(max(0, int(round(ms))) / 1000)


def format_duration(seconds: float | None) -> str:
    """Seconds → human duration (see `format_duration_ms`)."""
    return format_duration_ms(None if seconds is None else seconds * 1000)


# --------------------------------------------------------------------------- log lines

_PLAIN_TAGS = {level: f"[{level}]" for level in LOG_LEVELS}


class LogLineFormatter:
    """`(timestamp_ms, level, source, message)` → one output line, newline included.

    `[2026-11-21T10:15:30.123Z] [INFO] [plugin:core/shell.run] message`; the continuation
    lines of a multi-line message are indented to where the message starts. `tags` maps a
    level to its (possibly ANSI-coloured) tag, from `console.level_tags`; `show` makes a
    message that is not plain printable text safe to print (`literal`: every control
    character escaped; `terminal_text.render`: a program's colours kept).
    """

    __slots__ = ("_tags", "_show", "_second", "_prefix")

    def __init__(self, tags: Mapping[str, str] | None = None, show: Callable[[str], str] | None = None) -> None:
        self._tags = dict(tags or _PLAIN_TAGS)
        self._show = show or literal
        self._second = -1
        self._prefix = ""

    def __call__(self, timestamp: int, level: str, source: str, message: str) -> str:
        seconds, millis = divmod(timestamp, 1000)
        if seconds != self._second:  # strftime once per second of log, not once per line
            self._second = seconds
            self._prefix = "[" + time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        tag = self._tags.get(level)
        if tag is None:
            tag = f"[{literal(level)}]"
        if not source.isprintable():
            source = literal(source)
        if not message.isprintable():
            message = self._show(message)
            if "\n" in message:
                plain_tag = len(level) + 2 if level in self._tags else len(tag)
                indent = " " * (31 + plain_tag + len(source))
                message = message.replace("\n", "\n" + indent)
        return f"{self._prefix}.{millis:03d}Z] {tag} [{source}] {message}\n"

    def row(self, row: LogRow) -> str:
        return self(row.timestamp, row.level, row.source, row.message)


# --------------------------------------------------------------------------- stored rows, safe to show

#: columns that are one short token (ids, states, codes): shown on one line whatever they hold
_ONE_LINE_FIELDS = frozenset({
    "id", "execution_id", "workflow_id", "namespace", "state", "reason_code", "trigger_type", "workflow_path",
    "failed_task_id", "cancelled_by", "engine_host", "task_id", "type", "signal", "event_type", "source", "level",
})


def _safe_text(name: str, value: str) -> str:
    return literal_line(value) if name in _ONE_LINE_FIELDS else literal(value)


def _safe_value(name: str, value: Any) -> Any:
    if isinstance(value, str):
        return _safe_text(name, value)
    if name == "needs" and isinstance(value, list):
        return [literal_line(str(item)) for item in value]
    if name == "error" and isinstance(value, dict):  # its type/signal print as facts in a line
        return {key: _safe_text(key, item) if isinstance(item, str) else item for key, item in value.items()}
    return value


def display_safe(row: Any) -> Any:
    """A stored row with every text field made safe for a terminal (control characters and
    bidi overrides escaped; ids and states kept on one line). A database edited by hand or
    by another program can hold anything; the JSON outputs show it exactly instead."""
    import dataclasses

    changes = {}
    for item in dataclasses.fields(row):
        value = getattr(row, item.name)
        safe = _safe_value(item.name, value)
        if safe is not value and safe != value:
            changes[item.name] = safe
    return dataclasses.replace(row, **changes) if changes else row


def display_safe_snapshot(snapshot: ExecutionSnapshot) -> ExecutionSnapshot:
    import dataclasses

    return dataclasses.replace(
        snapshot,
        execution=display_safe(snapshot.execution),
        tasks=[display_safe(t) for t in snapshot.tasks],
        attempts=[display_safe(a) for a in snapshot.attempts],
        audit=[display_safe(event) for event in snapshot.audit],
        focus_task=None if snapshot.focus_task is None else literal_line(snapshot.focus_task),
    )


# --------------------------------------------------------------------------- shared bits


def state_text(state: str, *, running_marker: bool = True) -> Text:
    label = f"⏳ {state}" if running_marker and state == "RUNNING" else state
    return Text(label, style=state_style(state))


def value_text(value: Any, *, truncate: bool = True) -> str:
    """A stored (already masked) value as one string; long ones cut with `... (truncated)`."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = literal(text)
    if truncate and len(text) > TRUNCATE_AT:
        text = text[:TRUNCATE_AT] + TRUNCATED
    return text


def _kv_grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="kt.label", no_wrap=True)
    grid.add_column()
    return grid


_WRAPPING = {"NEEDS": 12, "DETAILS": 20, "TASKS": 12}


def borderless_table(*headers: str, wrapping: Mapping[str, int] = _WRAPPING) -> Table:
    """A borderless table; on a narrow terminal only the `wrapping` columns wrap (each down
    to its minimum width)."""
    table = Table(box=None, header_style="kt.table.header", pad_edge=False, show_edge=False, padding=(0, 2, 0, 0))
    for header in headers:
        wraps = header in wrapping
        table.add_column(header, no_wrap=not wraps, overflow="fold", min_width=wrapping.get(header))
    return table


# --------------------------------------------------------------------------- inspect


def execution_overview(snapshot: ExecutionSnapshot) -> Table:
    """Workflow, id, state, reason, message, trigger, start, end, duration, log entry count (and
    the entries lost, if the database refused writes)."""
    execution = snapshot.execution
    now = snapshot.taken_at_ms
    grid = _kv_grid()
    grid.add_row("Workflow", Text(literal(execution.workflow_id)))
    grid.add_row("Execution", Text(execution.id, style="kt.id"))
    grid.add_row("State", state_text(execution.state))
    if execution.reason_code:
        grid.add_row("Reason", Text(execution.reason_code))
    if execution.message:
        grid.add_row("Message", Text(literal(execution.message)))
    if execution.failed_task_id:
        grid.add_row("Failed task", Text(literal(execution.failed_task_id)))
    if execution.cancelled_by:
        grid.add_row("Cancelled by", Text(execution.cancelled_by))
    grid.add_row("Trigger", Text(execution.trigger_type))
    if execution.workflow_revision is not None:
        grid.add_row("Revision", Text(f"{execution.workflow_revision} (kestra-trio workflow show "
                                      f"{literal_line(execution.workflow_id)} --revision {execution.workflow_revision})"))
    grid.add_row("Started", Text(iso_ms(execution.started_at) or "-"))
    grid.add_row("Ended", Text(iso_ms(execution.ended_at) or "-"))
    duration = duration_of(execution.started_at, execution.ended_at, now, snapshot.running)
    if snapshot.running and execution.started_at is not None:
        grid.add_row("Duration", Text(f"running for {format_duration_ms(duration)}", style="kt.state.running"))
    else:
        grid.add_row("Duration", Text(format_duration_ms(duration)))
    grid.add_row("Tasks", Text(str(len(snapshot.tasks))))
    grid.add_row("Log entries", Text(str(snapshot.log_count)))
    if execution.log_entries_lost:
        grid.add_row(
            "Lost entries",
            Text(f"{execution.log_entries_lost:,} could not be written (database error; see the ERROR log lines)",
                 style="kt.state.failed"),
        )
    return grid


def _needs_text(task: TaskRunRow, states: Mapping[str, str]) -> Text:
    text = Text()
    for index, need in enumerate(task.needs):
        if index:
            text.append(", ")
        state = states.get(need, "?")
        mark = {"SUCCESS": "✓", "FAILED": "✗", "CANCELLED": "✗"}.get(state, "…")
        text.append(f"{literal(need)} {mark}", style=state_style(state) if mark != "…" else "kt.muted")
    return text if task.needs else Text("-", style="kt.muted")


def _task_duration_text(task: TaskRunRow, now: int) -> Text:
    if task.state == "RUNNING" and task.started_at is not None:
        return Text(f"running for {format_duration_ms(now - task.started_at)}", style="kt.state.running")
    duration = task.duration_ms if task.duration_ms is not None else duration_of(task.started_at, task.ended_at, now, False)
    return Text(format_duration_ms(duration))


TASK_COLUMNS = ("TASK", "TYPE", "STATE", "ATTEMPTS", "DURATION", "STARTED", "ENDED", "NEEDS")
#: on a narrow terminal the columns that fit are kept, in this order; the others are left out
#: whole (cutting every column to a few letters made the table unreadable)
_TASK_COLUMN_PRIORITY = ("TASK", "STATE", "DURATION", "ATTEMPTS", "NEEDS", "TYPE", "ENDED", "STARTED")
_TASK_ID_MIN = 12  # a longer task id wraps


def task_table(
    snapshot: ExecutionSnapshot, tasks: Sequence[TaskRunRow] | None = None, *, width: int | None = None
) -> Table:
    """TASK, TYPE, STATE, ATTEMPTS, DURATION, STARTED, ENDED, NEEDS (times UTC); within
    `width` columns, the most useful of them that fit."""
    now = snapshot.taken_at_ms
    states = snapshot.task_states
    rows = [
        {
            "TASK": Text(literal(task.task_id)),
            "TYPE": Text(literal(task.type)),
            "STATE": state_text(task.state),
            "ATTEMPTS": Text(f"{task.attempt_count}/{task.max_attempts}"),
            "DURATION": _task_duration_text(task, now),
            "STARTED": Text(clock_ms(task.started_at)),
            "ENDED": Text(clock_ms(task.ended_at)),
            "NEEDS": _needs_text(task, states),
        }
        for task in (snapshot.tasks if tasks is None else tasks)
    ]
    columns = _fitting_columns(rows, width) if width else TASK_COLUMNS
    task_width = min(_TASK_ID_MIN, max([4, *(row["TASK"].cell_len for row in rows)]))
    table = borderless_table(*columns, wrapping={**_WRAPPING, "TASK": task_width})
    for row in rows:
        table.add_row(*(row[name] for name in columns))
    return table


def _fitting_columns(rows: list[dict[str, Text]], width: int) -> tuple[str, ...]:
    natural = {name: max([len(name), *(row[name].cell_len for row in rows)]) for name in TASK_COLUMNS}
    natural["TASK"] = min(natural["TASK"], _TASK_ID_MIN)  # wraps beyond that
    natural["NEEDS"] = min(natural["NEEDS"], _WRAPPING["NEEDS"])
    chosen: set[str] = set()
    used = 0
    for name in _TASK_COLUMN_PRIORITY:
        needed = natural[name] + (2 if chosen else 0)  # 2: the padding between columns
        if name == "TASK" or used + needed <= width:
            chosen.add(name)
            used += needed
    return tuple(name for name in TASK_COLUMNS if name in chosen)


def _attempt_line(attempt: AttemptRow, now: int) -> Text:
    text = Text(f"attempt {attempt.number}  ")
    text.append(attempt.state, style=state_style(attempt.state))
    details = []
    if attempt.reason_code:
        details.append(attempt.reason_code)
    if attempt.exit_code is not None:
        details.append(f"exit code {attempt.exit_code}")
    if attempt.signal:
        details.append(f"signal {attempt.signal}")
    running = attempt.ended_at is None and attempt.state == "RUNNING"
    duration = attempt.duration_ms if attempt.duration_ms is not None else duration_of(
        attempt.started_at, attempt.ended_at, now, running
    )
    details.append(("running for " if running else "after ") + format_duration_ms(duration))
    text.append("  (" + ", ".join(details) + ")")
    if attempt.message:
        text.append(": " + literal(attempt.message))
    return text


def _stderr_tail_lines(error: Mapping[str, Any]) -> list[str]:
    tail = error.get("stderr_tail") or error.get("stack") or error.get("traceback")
    if not tail:
        return []
    if isinstance(tail, str):
        lines = tail.splitlines()
    else:
        lines = [str(line) for line in tail]
    return [literal(line) for line in lines]


def error_lines(task: TaskRunRow, *, indent: str = "  ") -> list[Text]:
    """The error of a failed task: message, exit code, signal, reason, stderr tail."""
    error = task.error or {}
    if task.state == "SUCCESS" or (not error and task.state not in ("FAILED", "CANCELLED")):
        return []  # a succeeded task has no error (an older engine left its last retry's there)
    lines: list[Text] = []
    head = Text(indent)
    head.append(literal(task.task_id), style="kt.label")
    head.append(": ")
    head.append(task.state, style=state_style(task.state))
    facts = []
    for key, label in (("reason_code", "reason"), ("exit_code", "exit code"), ("signal", "signal"), ("type", "type")):
        if error.get(key) is not None:
            facts.append(f"{label} {error[key]}")
    if not error.get("reason_code") and task.reason_code:
        facts.insert(0, f"reason {task.reason_code}")
    if facts:
        head.append(" (" + ", ".join(facts) + ")")
    lines.append(head)
    message = error.get("message") or error.get("_unreadable") or task.message
    if message:
        for line in literal(str(message)).splitlines() or [""]:
            lines.append(Text(indent * 2 + line, style="kt.error"))
    tail = _stderr_tail_lines(error)
    if tail:
        lines.append(Text(indent * 2 + "stderr (last lines):", style="kt.muted"))
        lines.extend(Text(indent * 3 + line) for line in tail)
    return lines


def _values_lines(label: str, values: Any, indent: str, truncate: bool) -> list[Text]:
    if values is None:
        return [Text(f"{indent}{label}: -", style="kt.muted")]
    if not isinstance(values, Mapping):
        return [Text(f"{indent}{label}: {value_text(values, truncate=truncate)}")]
    if not values:
        return [Text(f"{indent}{label}: {{}}", style="kt.muted")]
    lines = [Text(f"{indent}{label}:")]
    for key, value in values.items():
        lines += _entry_lines(f"{indent}  {literal(str(key))} = ", value, indent + "      ", truncate)
    return lines


def _entry_lines(head: str, value: Any, block_indent: str, truncate: bool) -> list[Text]:
    """`key = value`; a multi-line string as an indented block under `key = |` (as YAML writes
    it), and a string that would read as something else (`" 2"`, `"true"`, `""`) in quotes."""
    if isinstance(value, str) and "\n" in value.rstrip("\n"):
        text = value
        cut = truncate and len(text) > TRUNCATE_AT
        if cut:
            text = text[:TRUNCATE_AT]
        body = [Text(block_indent + literal(line)) for line in text.rstrip("\n").split("\n")]
        if cut:
            body[-1].append(TRUNCATED)
        return [Text(head + "|"), *body]
    if isinstance(value, str) and _ambiguous(value):
        value = json.dumps(value, ensure_ascii=False)
    return [Text(head + value_text(value, truncate=truncate))]


def _ambiguous(text: str) -> bool:
    if not text or text != text.strip():
        return True
    try:
        return not isinstance(json.loads(text), str)  # "2", "true", "null", "[1]" read as JSON
    except ValueError:
        return False


def io_lines(task: TaskRunRow, *, truncate: bool = True, indent: str = "  ") -> list[Text]:
    """Resolved inputs (secrets already `***SECRET***`) and outputs of one task."""
    lines = [Text(indent + literal(task.task_id), style="kt.label")]
    lines += _values_lines("inputs", task.inputs, indent * 2, truncate)
    lines += _values_lines("outputs", task.outputs, indent * 2, truncate)
    return lines


def _section(title: str) -> Text:
    return Text(title, style="kt.label")


def retry_lines(snapshot: ExecutionSnapshot) -> list[Text]:
    """Every task that needed more than one attempt, with each attempt and its reason."""
    lines: list[Text] = []
    for task in snapshot.tasks:
        attempts = snapshot.attempts_by_task.get(task.task_id, [])
        if len(attempts) > 1:
            lines.append(Text("  " + literal(task.task_id), style="kt.label"))
            lines.extend(Text("    ").append_text(_attempt_line(a, snapshot.taken_at_ms)) for a in attempts)
    return lines


def execution_summary(snapshot: ExecutionSnapshot, table_width: int | None = None, show_inputs: bool = False) -> Group:
    """For big executions: counts per state, failed and running tasks, and the --task hint."""
    counts = Counter(task.state for task in snapshot.tasks)
    parts: list[Any] = [_section(f"Tasks ({len(snapshot.tasks)}): summary")]
    line = Text("  ")
    for index, (state, count) in enumerate(sorted(counts.items(), key=lambda kv: _STATE_ORDER.get(kv[0], 99))):
        if index:
            line.append(", ")
        line.append(f"{count} {state}", style=state_style(state))
    parts.append(line)
    failed = [t for t in snapshot.tasks if t.state in ("FAILED", "CANCELLED")]
    running = [t for t in snapshot.tasks if t.state == "RUNNING"]
    if failed:
        parts.append(Text(""))
        parts.append(_section(f"Failed tasks ({len(failed)})"))
        parts.append(task_table(snapshot, failed, width=table_width))
    if running:
        parts.append(Text(""))
        parts.append(_section(f"Running tasks ({len(running)})"))
        parts.append(task_table(snapshot, running, width=table_width))
    parts.append(Text(""))
    parts.append(
        Text(
            f"{len(snapshot.tasks)} tasks: showing a summary. "
            + (
                "Inputs and outputs are shown one task at a time: add --task <task-id>."
                if show_inputs else "Use --task <task-id> to see one task in full."
            ),
            style="kt.hint",
        )
    )
    return Group(*parts)


_STATE_ORDER = {"SUCCESS": 0, "FAILED": 1, "CANCELLED": 2, "RUNNING": 3, "WAITING": 4, "PENDING": 5, "QUEUED": 6}


def inspect_view(
    snapshot: ExecutionSnapshot,
    *,
    show_inputs: bool = False,
    truncate: bool = True,
    timeline: Timeline | None = None,
    audit: bool = False,
    width: int = 40,
    table_width: int | None = None,
) -> Group:
    """The whole `execution inspect` text output as one renderable (`width`: the timeline's
    bars; `table_width`: the terminal's, which the task table fits in)."""
    snapshot = display_safe_snapshot(snapshot)
    parts: list[Any] = []
    if snapshot.execution.state == "QUEUED":
        queue = literal_line(snapshot.execution.queue)
        parts.append(Text(f"Execution queued: waiting for a worker of queue {queue}", style="kt.note"))
    elif snapshot.running:
        parts.append(Text("Execution in progress", style="kt.note"))
    parts.append(execution_overview(snapshot))
    if snapshot.focus_task is not None:
        task = snapshot.task(snapshot.focus_task)
        assert task is not None
        parts.append(Text(""))
        parts.append(task_detail(snapshot, task, show_inputs=show_inputs, truncate=truncate, table_width=table_width))
    elif len(snapshot.tasks) > SUMMARY_THRESHOLD:
        parts.append(Text(""))
        parts.append(execution_summary(snapshot, table_width, show_inputs))
    else:
        parts.append(Text(""))
        parts.append(_section(f"Tasks ({len(snapshot.tasks)})"))
        parts.append(task_table(snapshot, width=table_width))
        retries = retry_lines(snapshot)
        if retries:
            parts += [Text(""), _section("Retries"), *retries]
        errors = [line for task in snapshot.tasks for line in error_lines(task)]
        if errors:
            parts += [Text(""), _section("Errors"), *errors]
        if show_inputs:
            parts += [Text(""), _section("Inputs and outputs")]
            for task in snapshot.tasks:
                parts += io_lines(task, truncate=truncate)
    if timeline is not None:
        parts += [Text(""), _section("Timeline"), timeline_table(timeline, width=width)]
    if audit:
        parts += [Text(""), _section(f"Audit events ({len(snapshot.audit)})"), audit_table(snapshot.audit)]
    return Group(*parts)


def task_detail(
    snapshot: ExecutionSnapshot, task: TaskRunRow, *, show_inputs: bool = True, truncate: bool = True,
    table_width: int | None = None,
) -> Group:
    """One task in full: its row, attempts, error, inputs/outputs (with --show-inputs), last logs."""
    parts: list[Any] = [_section(f"Task {literal(task.task_id)}"), task_table(snapshot, [task], width=table_width)]
    attempts = snapshot.attempts_by_task.get(task.task_id, [])
    parts += [Text(""), _section(f"Attempts ({len(attempts)})")]
    if attempts:
        parts += [Text("  ").append_text(_attempt_line(a, snapshot.taken_at_ms)) for a in attempts]
    else:
        parts.append(Text("  none", style="kt.muted"))
    errors = error_lines(task)
    if errors:
        parts += [Text(""), _section("Error"), *errors]
    if show_inputs:
        parts += [Text(""), _section("Inputs and outputs"), *io_lines(task, truncate=truncate)]
    parts += [Text(""), _section(f"Last log lines ({len(snapshot.task_logs)})")]
    if snapshot.task_logs:
        fmt = LogLineFormatter()
        parts += [Text("  " + fmt.row(row).rstrip("\n")) for row in snapshot.task_logs]
    else:
        parts.append(Text("  none", style="kt.muted"))
    return Group(*parts)


# --------------------------------------------------------------------------- timeline

FULL, WAIT = "█", "░"


def _cell(offset: int, span: int, width: int) -> int:
    return min(width, (offset * width) // span)


def timeline_bar(row: Any, span: int, width: int) -> Text:
    """`width` cells: `█` while an attempt runs, `░` for waits between attempts, spaces elsewhere."""
    cells = [" "] * width
    styles: list[str] = ["none"] * width
    if row.start is None:
        return Text(" " * width)
    first = _cell(row.start, span, width)
    last = max(first + 1, -(-row.end * width // span))  # ceil, at least one cell
    for index in range(first, min(last, width)):
        cells[index] = WAIT
        styles[index] = "kt.bar.wait"
    for part in row.spans:
        a = _cell(part.start, span, width)
        b = max(a + 1, -(-part.end * width // span))
        style = "kt.bar.running" if part.running else state_style(part.state).replace("kt.state.", "kt.bar.")
        for index in range(a, min(b, width)):
            cells[index] = FULL
            styles[index] = style
    text = Text()
    start = 0
    for index in range(1, width + 1):  # one span per run of equal cells, not one per cell
        if index == width or styles[index] != styles[start] or cells[index] != cells[start]:
            text.append("".join(cells[start:index]), style=styles[start])
            start = index
    return text


#: the task id column of the timeline; a longer id wraps
TIMELINE_ID_WIDTH = 24
#: room the timeline keeps beside its bars for the offset, duration and state
TIMELINE_LABEL_WIDTH = 28


def timeline_bar_width(terminal_width: int, longest_id: int) -> int:
    """As many bar cells as the terminal leaves beside the task ids and labels (8 to 60)."""
    return max(8, min(60, terminal_width - min(longest_id, TIMELINE_ID_WIDTH) - TIMELINE_LABEL_WIDTH))


def timeline_table(timeline: Timeline, *, width: int = 40) -> Table:
    """A Gantt chart relative to the execution start; overlapping bars are tasks run in parallel."""
    table = Table.grid(padding=(0, 1))
    # on a narrow terminal a long task id and the times wrap whole; only the bar is fixed
    table.add_column(overflow="fold", max_width=TIMELINE_ID_WIDTH)
    table.add_column(no_wrap=True, min_width=width)
    table.add_column(overflow="fold")
    start_label, end_label = "0s", format_duration_ms(timeline.span) + (" (now)" if timeline.running else "")
    axis = start_label + " " * max(1, width - len(start_label) - len(end_label)) + end_label
    table.add_row(Text(""), Text(axis, style="kt.muted"), Text(""))
    for row in timeline.rows:
        if row.start is None:
            label = Text("not started", style="kt.muted")
        elif row.running:
            label = Text(f"+{format_duration_ms(row.start)}  running for {format_duration_ms(row.duration)}", style="kt.state.running")
        else:
            label = Text(f"+{format_duration_ms(row.start)}  {format_duration_ms(row.duration)}")
            if row.state != "SUCCESS":
                label.append(f"  {literal_line(row.state)}", style=state_style(row.state))
        table.add_row(Text(literal_line(row.task_id)), timeline_bar(row, timeline.span, width), label)
    return table


# --------------------------------------------------------------------------- audit


def audit_details(event: AuditRow) -> str:
    metadata = dict(event.metadata or {})
    parts: list[str] = []
    if event.event_type == "STATE_CHANGE":
        entity = metadata.pop("entity", None)
        task_id = metadata.pop("task_id", None)
        subject = f"task {task_id}" if task_id else (entity or "execution")
        parts.append(f"{subject}: {metadata.pop('from_state', '?')} → {metadata.pop('to_state', '?')}")
    for key, value in metadata.items():
        if value is None:
            continue
        parts.append(f"{key}={value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)}")
    return literal("  ".join(parts) if event.event_type == "STATE_CHANGE" else ", ".join(parts))


def audit_table(events: Iterable[AuditRow]) -> Table:
    table = borderless_table("TIME", "EVENT", "DETAILS")
    for event in events:
        table.add_row(
            Text(iso_ms(event.timestamp) or "-"),
            Text(event.event_type, style="kt.audit.type"),
            Text(audit_details(event)),
        )
    return table


# --------------------------------------------------------------------------- inspect --json


# --------------------------------------------------------------------------- list


def task_counts_text(counts: Mapping[str, int]) -> Text:
    text = Text()
    for index, (state, count) in enumerate(sorted(counts.items(), key=lambda kv: _STATE_ORDER.get(kv[0], 99))):
        if index:
            text.append(" ")
        text.append(f"{count} {literal_line(state)}", style=state_style(state))
    return text if counts else Text("-", style="kt.muted")


def execution_list_table(
    executions: Sequence[ExecutionRow], counts: Mapping[str, Mapping[str, int]], now_ms: int
) -> Table:
    """ID, WORKFLOW, STATE, STARTED (UTC), DURATION, TASKS — newest first, as given."""
    # STARTED may wrap too: else an 80-column terminal squeezes TASKS to nothing
    table = borderless_table("ID", "WORKFLOW", "STATE", "STARTED", "DURATION", "TASKS", wrapping={**_WRAPPING, "STARTED": 10})
    for stored in executions:
        tasks = counts.get(stored.id, {})
        execution = display_safe(stored)
        running = execution.state not in TERMINAL_STATES
        duration = duration_of(execution.started_at, execution.ended_at, now_ms, running)
        started = iso_ms(execution.started_at or execution.created_at) or "-"
        table.add_row(
            Text(execution.id, style="kt.id"),
            Text(literal(execution.workflow_id)),
            state_text(execution.state, running_marker=False),
            Text(started.replace("T", " ").removesuffix("Z")),
            Text(format_duration_ms(duration) if duration is not None else "-"),
            task_counts_text(tasks),
        )
    table.columns[0].min_width = max((len(e.id) for e in executions), default=2)
    return table


def dumps_pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


__all__ = [
    "INVALID_LEVEL",
    "INVALID_TIME",
    "LogJsonFormatter",
    "LogLineFormatter",
    "dumps_pretty",
    "execution_summary",
    "log_row_json",
    "state_text",
    "value_text",
    "audit_table",
    "clock_ms",
    "error_lines",
    "execution_list_json",
    "execution_list_table",
    "execution_overview",
    "format_duration",
    "format_duration_ms",
    "inspect_view",
    "iso_ms",
    "literal",
    "literal_line",
    "log_json",
    "log_json_object",
    "parse_levels",
    "parse_since",
    "snapshot_json",
    "task_detail",
    "task_table",
    "timeline_table",
]
