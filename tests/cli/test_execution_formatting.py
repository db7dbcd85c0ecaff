"""Pure formatting: rows → strings and renderables, rendered through a StringIO console."""

from __future__ import annotations

import dataclasses
import json
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console, Group
from rich.text import Text

from factories import T0, ExecutionFactory, simple_success, task
from kestra_trio.cli import formatting as F
from kestra_trio.cli.theme import build_theme
from kestra_trio.inspection.inspector import ExecutionInspector, ExecutionSnapshot
from kestra_trio.inspection.timeline import build_timeline
from kestra_trio.storage.db import open_database
from kestra_trio.storage.rows import AuditRow, LogRow


def render(renderable, width: int = 100) -> str:
    console = Console(
        file=StringIO(), width=width, color_system=None, theme=build_theme(), highlight=False, markup=False
    )
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines()) + "\n"


# --------------------------------------------------------------------------- durations, parsing


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "-"), (0, "0ms"), (500, "500ms"), (999, "999ms"), (1000, "1s"), (2500, "2.5s"), (12_040, "12s"),
        (90_000, "1m 30s"), (150_000, "2m 30s"), (3_600_000, "1h"), (3_725_000, "1h 2m"),
        (90_000_000, "1d 1h"), (-5, "0ms"),
    ],
)
def test_format_duration_ms(ms, text) -> None:
    assert F.format_duration_ms(ms) == text


def test_format_duration_seconds() -> None:
    assert F.format_duration(2.5) == "2.5s" and F.format_duration(0.5) == "500ms"


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("500ms", 0.5), ("1.5H", 5400), ("1h30m", 5400), ("3650d", 3650 * 86400)])
def test_parse_since(text, seconds) -> None:
    assert F.parse_since(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m5", "5 minutes", "-5m", "0s", "0ms", "1w"])
def test_parse_since_rejects(text) -> None:
    with pytest.raises(ValueError, match=r"^Invalid time format\. Examples: 5m, 2h, 1d$"):
        F.parse_since(text)


@pytest.mark.parametrize("text", ["3651d", "3650d1ms"])
def test_parse_since_beyond_the_bound_says_the_bound(text) -> None:
    with pytest.raises(ValueError, match=r"^Invalid time format\. Examples: 5m, 2h, 1d \(at most 3650d\)$"):
        F.parse_since(text)


def test_parse_levels() -> None:
    assert F.parse_levels("ERROR") == ("ERROR",)
    assert F.parse_levels("warn, error,WARNING") == ("WARN", "ERROR")
    for bad in ("TRACE", "", "WARN,", "info;error"):
        with pytest.raises(ValueError, match=r"^Invalid log level\. Must be one of: DEBUG, INFO, WARN, ERROR$"):
            F.parse_levels(bad)


def test_iso_and_clock() -> None:
    assert F.iso_ms(T0 + 123) == "2026-11-21T10:15:30.123Z"
    assert F.iso_ms(None) is None
    assert F.clock_ms(T0 + 5) == "10:15:30.005" and F.clock_ms(None) == "-"


# --------------------------------------------------------------------------- log lines


def test_log_line() -> None:
    fmt = F.LogLineFormatter()
    assert fmt(T0 + 123, "INFO", "plugin:core/shell.run", "message") == (
        "[2026-11-21T10:15:30.123Z] [INFO] [plugin:core/shell.run] message\n"
    )
    # the per-second cache must not leak into the next second
    assert fmt(T0 + 1999, "ERROR", "scheduler", "x") == "[2026-11-21T10:15:31.999Z] [ERROR] [scheduler] x\n"


def test_log_line_continuation_is_indented_under_the_message() -> None:
    line = F.LogLineFormatter()(T0, "WARN", "worker", "first\nsecond\n\tthird")
    first, second, third = line.rstrip("\n").split("\n")
    column = first.index("first")
    assert second == " " * column + "second"
    assert third == " " * column + "\tthird"


def test_hostile_text_is_literal_and_neutralised() -> None:
    message = "[/x] [bold]b[/bold] \x1b[2J\x1b]0;title\x07 a\rb \x00 \x9b \u202e"
    line = F.LogLineFormatter()(T0, "INFO", "plugin:x\x1b", message)
    assert line == (
        "[2026-11-21T10:15:30.000Z] [INFO] [plugin:x\\x1b] "
        "[/x] [bold]b[/bold] \\x1b[2J\\x1b]0;title\\x07 a\\rb \\x00 \\x9b \\u202e\n"
    )
    assert not any(ord(ch) < 0x20 and ch != "\n" for ch in line)
    # rendered through rich as Text, markup-like text stays as is
    assert render(Text(F.literal(message))) == (
        "[/x] [bold]b[/bold] \\x1b[2J\\x1b]0;title\\x07 a\\rb \\x00 \\x9b \\u202e\n"
    )


def test_unknown_level_and_coloured_tags() -> None:
    fmt = F.LogLineFormatter({"ERROR": "\x1b[31m[ERROR]\x1b[0m"})
    assert fmt(T0, "ERROR", "s", "a\nb") == "[2026-11-21T10:15:30.000Z] \x1b[31m[ERROR]\x1b[0m [s] a\n" + " " * 39 + "b\n"
    assert F.LogLineFormatter()(T0, "TRACE\x1b", "s", "m").startswith("[2026-11-21T10:15:30.000Z] [TRACE\\x1b] [s]")


def test_log_json_objects() -> None:
    text = F.log_json("ex", "a", T0 + 7, "INFO", "plugin:core/shell.run", "hi \x1b \"q\"", '{"rows":3}')
    assert json.loads(text) == {
        "execution_id": "ex", "task_id": "a", "timestamp": "2026-11-21T10:15:30.007Z", "level": "INFO",
        "source": "plugin:core/shell.run", "message": "hi \x1b \"q\"", "metadata": {"rows": 3},
    }
    assert "\x1b" not in text  # JSON-escaped
    fast = F.LogJsonFormatter("ex")
    for args in [("a", T0 + 7, "INFO", "s", "m\n\x00é", '{"rows":3}'), (None, T0 + 1001, "ERROR", "s", "", None)]:
        assert fast(*args) == F.log_json("ex", *args)
    row = LogRow(1, "ex", None, T0, "DEBUG", "scheduler", "m", None)
    assert json.loads(F.log_row_json(row))["metadata"] == {}


# --------------------------------------------------------------------------- inspect


async def _snapshot(tmp_path: Path, builder, execution_id: str, **kwargs) -> ExecutionSnapshot:
    async with open_database(tmp_path / "k.db") as db:
        await builder(db)
        return await ExecutionInspector(db).snapshot(execution_id, **kwargs)


async def _failed(db) -> None:
    ex = ExecutionFactory(db, "ex-failed")
    await ex.create([task("fetch", max_attempts=2), task("parse", needs=["fetch"]), task("report", needs=["parse"])])
    await ex.start(0)
    await ex.start_task("fetch", start=50, inputs={"url": "https://example.com/" + "x" * 250})
    await ex.retry_task("fetch", attempt_start=50, end=1050)
    await ex.start_task("fetch", start=2050, attempt=2)
    await ex.end_task("fetch", "SUCCESS", end=3000, attempt=2, attempt_start=2050, task_start=50, outputs={"status": 200})
    await ex.fail_task(
        "parse", start=3100, end=3400, exit_code=2, message="bad [bold]json[/x]",
        stderr_tail=["Traceback:", "  \x1b[31mValueError\x1b[0m"], inputs={"token": "***SECRET***"},
    )
    await ex.store.apply(_cancel_change(ex, "report", 3450))
    await ex.finish("FAILED", at=3500, message="task parse failed", failed_task_id="parse")


def _cancel_change(ex, task_id, at):
    from kestra_trio.state.states import State
    from kestra_trio.storage.executions import StateChange

    return StateChange(ex.id, State.CANCELLED, "UPSTREAM_FAILED", task_id=task_id, at=ex.t0 + at)


FAILED_VIEW = """\
Workflow     hello
Execution    ex-failed
State        FAILED
Reason       TASK_FAILED
Message      task parse failed
Failed task  parse
Trigger      manual
Started      2026-11-21T10:15:30.000Z
Ended        2026-11-21T10:15:33.500Z
Duration     3.5s
Tasks        3
Log entries  0

Tasks (3)
TASK    TYPE            STATE      ATTEMPTS  DURATION  STARTED       ENDED         NEEDS
fetch   core/shell.run  SUCCESS    2/2       3s        10:15:30.050  10:15:33.000  -
parse   core/shell.run  FAILED     1/1       300ms     10:15:33.100  10:15:33.400  fetch ✓
report  core/shell.run  CANCELLED  0/1       -         -             -             parse ✗

Retries
  fetch
    attempt 1  FAILED  (PLUGIN_FAILED, exit code 1, after 1s): exit code 1
    attempt 2  SUCCESS  (COMPLETED, after 950ms)

Errors
  parse: FAILED (reason PLUGIN_FAILED, exit code 2)
    bad [bold]json[/x]
    stderr (last lines):
      Traceback:
        \\x1b[31mValueError\\x1b[0m
  report: CANCELLED (reason UPSTREAM_FAILED)
"""


async def test_inspect_view_failed(tmp_path: Path) -> None:
    snapshot = await _snapshot(tmp_path, _failed, "ex-failed")
    assert render(F.inspect_view(snapshot)) == FAILED_VIEW


async def test_inspect_inputs_truncated_or_not(tmp_path: Path) -> None:
    snapshot = await _snapshot(tmp_path, _failed, "ex-failed")
    text = render(F.inspect_view(snapshot, show_inputs=True), width=400)
    url = "https://example.com/" + "x" * 250
    assert "Inputs and outputs\n  fetch\n    inputs:\n      url = " + url[:200] + "... (truncated)\n" in text
    assert "    outputs:\n      status = 200\n  parse\n    inputs:\n      token = ***SECRET***\n    outputs: -\n" in text
    full = render(F.inspect_view(snapshot, show_inputs=True, truncate=False), width=400)
    assert "url = " + url + "\n" in full and "truncated" not in full


async def test_inspect_values_multi_line_as_blocks_and_look_alike_strings_quoted(tmp_path: Path) -> None:
    snapshot = await _snapshot(tmp_path, _failed, "ex-failed")
    row = dataclasses.replace(
        snapshot.tasks[0],
        inputs={"script": "x = 1\nprint(x)\n", "text": " 2", "n": 2, "s": "2", "flag": "true", "empty": "", "plain": "hi"},
        outputs={"long": "line\n" * 100},
    )
    text = render(Group(*F.io_lines(row)), width=120)
    assert text.startswith(
        "  fetch\n    inputs:\n"
        "      script = |\n          x = 1\n          print(x)\n"  # no empty line for the final newline
        '      text = " 2"\n      n = 2\n      s = "2"\n      flag = "true"\n      empty = ""\n      plain = hi\n'
        "    outputs:\n      long = |\n          line\n"
    )
    assert text.endswith("          line... (truncated)\n") and text.count("line") == 40  # 200 characters kept


@pytest.mark.parametrize(
    ("width", "header"),
    [
        (40, "TASK    STATE      ATTEMPTS  DURATION"),
        (60, "TASK    STATE      ATTEMPTS  DURATION  ENDED         NEEDS"),
        (80, "TASK    TYPE            STATE      ATTEMPTS  DURATION  ENDED         NEEDS"),
        (None, "TASK    TYPE            STATE      ATTEMPTS  DURATION  STARTED       ENDED         NEEDS"),
    ],
)
async def test_task_table_keeps_whole_columns_that_fit(tmp_path: Path, width, header) -> None:
    # on a narrow terminal, columns are left out whole (task id first kept), never all cut short
    snapshot = await _snapshot(tmp_path, _failed, "ex-failed")
    text = render(F.task_table(snapshot, width=width), width=width or 200)
    lines = text.splitlines()
    assert lines[0] == header
    assert all(len(line) <= (width or 200) for line in lines)
    assert [line.split()[0] for line in lines[1:]] == ["fetch", "parse", "report"]


async def test_timeline_table(tmp_path: Path) -> None:
    snapshot = await _snapshot(tmp_path, _failed, "ex-failed")
    chart = build_timeline(snapshot.execution, snapshot.tasks, snapshot.attempts_by_task, snapshot.taken_at_ms)
    assert render(F.timeline_table(chart, width=35)) == (
        "       0s                             3.5s\n"
        "fetch  ███████████░░░░░░░░░██████████      +50ms  3s\n"
        "parse                                 ███  +3.1s  300ms  FAILED\n"
        "report                                     not started\n"
    )


async def test_timeline_on_a_narrow_terminal_wraps_ids_and_times_whole(tmp_path: Path) -> None:
    async def build(db) -> None:
        ex = ExecutionFactory(db, "narrow")
        await ex.create([task("a-very-long-task-identifier-" + "x" * 30), task("b")])
        await ex.start(0)
        await ex.run_task("a-very-long-task-identifier-" + "x" * 30, start=0, end=2000)
        await ex.fail_task("b", start=100, end=1500, message="boom")
        await ex.finish("FAILED", at=2000)

    snapshot = await _snapshot(tmp_path, build, "narrow")
    chart = build_timeline(snapshot.execution, snapshot.tasks, snapshot.attempts_by_task, 0)
    bars = F.timeline_bar_width(40, max(len(t.task_id) for t in snapshot.tasks))
    text = render(F.timeline_table(chart, width=bars), width=40)
    assert all(len(line) <= 40 for line in text.splitlines())
    assert "…" not in text  # nothing cut: ids and times wrap instead
    flat = text.replace("\n", "")
    assert "+100ms  1.4s" in flat and "FAILED" in flat


async def test_parallel_bars_overlap(tmp_path: Path) -> None:
    async def build(db) -> None:
        ex = ExecutionFactory(db, "par")
        await ex.create([task("a"), task("b"), task("join", needs=["a", "b"])])
        await ex.start(0)
        await ex.run_task("a", start=0, end=2000)
        await ex.run_task("b", start=0, end=1000)
        await ex.run_task("join", start=2000, end=3000)
        await ex.finish("SUCCESS", at=3000)

    snapshot = await _snapshot(tmp_path, build, "par")
    chart = build_timeline(snapshot.execution, snapshot.tasks, snapshot.attempts_by_task, 0)
    assert render(F.timeline_table(chart, width=30)) == (
        "     0s                          3s\n"
        "a    ████████████████████           +0ms  2s\n"
        "b    ██████████                     +0ms  1s\n"
        "join                     ██████████ +2s  1s\n"
    )


async def _running(db) -> None:
    ex = ExecutionFactory(db, "ex-run")
    await ex.create([task("a"), task("b", needs=["a"])])
    await ex.start(0)
    await ex.run_task("a", start=0, end=500)
    await ex.start_task("b", start=600)


async def test_running_execution(tmp_path: Path) -> None:
    snapshot = await _snapshot(tmp_path, _running, "ex-run")
    snapshot = dataclasses.replace(snapshot, taken_at_ms=T0 + 150_400)
    text = render(F.inspect_view(snapshot, audit=False))
    assert text.startswith("Execution in progress\nWorkflow     hello\n")
    assert "Duration     running for 2m 30s\n" in text
    assert "b     core/shell.run  ⏳ RUNNING  1/1       running for 2m 30s  10:15:30.600  -             a ✓\n" in text
    chart = build_timeline(snapshot.execution, snapshot.tasks, snapshot.attempts_by_task, snapshot.taken_at_ms)
    lines = render(F.timeline_table(chart, width=20)).splitlines()
    assert lines[0] == "  0s      2m 30s (now)"
    assert lines[2] == "b ████████████████████ +600ms  running for 2m 30s"


async def test_big_execution_summary_and_task_detail(tmp_path: Path) -> None:
    async def build(db) -> None:
        ex = ExecutionFactory(db, "big")
        await ex.create([task(f"t{i:02d}") for i in range(60)])
        await ex.start(0)
        for i in range(57):
            await ex.run_task(f"t{i:02d}", start=i, end=i + 10)
        await ex.fail_task("t57", start=100, end=200, message="boom")
        await ex.start_task("t58", start=300)
        await ex.logs([(300 + i, "INFO", "t58", f"line {i}") for i in range(25)])

    snapshot = await _snapshot(tmp_path, build, "big")
    snapshot = dataclasses.replace(snapshot, taken_at_ms=T0 + 1300)
    text = render(F.inspect_view(snapshot))
    assert "Tasks (60): summary\n  57 SUCCESS, 1 FAILED, 1 RUNNING, 1 PENDING\n" in text
    assert "Failed tasks (1)\nTASK" in text and "\nt57   core/shell.run  FAILED" in text
    assert "Running tasks (1)\nTASK" in text and "t58   core/shell.run  ⏳ RUNNING  1/1       running for 1s" in text
    assert text.endswith("60 tasks: showing a summary. Use --task <task-id> to see one task in full.\n")
    # --show-inputs is not silently dropped in summary mode: the hint says how to get them
    with_inputs = render(F.inspect_view(snapshot, show_inputs=True))
    assert with_inputs.endswith("Inputs and outputs are shown one task at a time: add --task <task-id>.\n")
    assert "t03" not in text

    async with open_database(tmp_path / "k.db") as db:
        one = await ExecutionInspector(db).snapshot("big", task_id="t58")
    detail = render(F.inspect_view(dataclasses.replace(one, taken_at_ms=T0 + 1300)))
    assert "Task t58\n" in detail and "Attempts (1)\n  attempt 1  RUNNING  (running for 1s)\n" in detail
    assert "Last log lines (20)\n  [2026-11-21T10:15:30.305Z] [INFO] [plugin:core/shell.run] line 5\n" in detail
    assert detail.endswith("[2026-11-21T10:15:30.324Z] [INFO] [plugin:core/shell.run] line 24\n")


def test_audit_table() -> None:
    events = [
        AuditRow(1, "ex", "CREATED", T0, {"workflow_id": "hello", "task_count": 2}),
        AuditRow(2, "ex", "STATE_CHANGE", T0 + 5, {"entity": "task", "task_id": "a", "from_state": "PENDING",
                                                    "to_state": "RUNNING", "reason": "STARTED"}),
        AuditRow(3, "ex", "CANCEL_REQUESTED", T0 + 9, {"requested_by": "user", "reason": "[red]no[/red]\x1b"}),
    ]
    assert render(F.audit_table(events)) == (
        "TIME                      EVENT             DETAILS\n"
        "2026-11-21T10:15:30.000Z  CREATED           workflow_id=hello, task_count=2\n"
        "2026-11-21T10:15:30.005Z  STATE_CHANGE      task a: PENDING → RUNNING  reason=STARTED\n"
        "2026-11-21T10:15:30.009Z  CANCEL_REQUESTED  requested_by=user, reason=[red]no[/red]\\x1b\n"
    )


async def test_snapshot_json(tmp_path: Path) -> None:
    snapshot = await _snapshot(tmp_path, _failed, "ex-failed")
    data = json.loads(F.dumps_pretty(F.snapshot_json(snapshot)))
    assert data["execution"]["state"] == "FAILED" and data["execution"]["started_at"] == "2026-11-21T10:15:30.000Z"
    fetch, parse, report = data["tasks"]
    assert [a["state"] for a in fetch["attempts"]] == ["FAILED", "SUCCESS"]
    assert fetch["outputs"] == {"status": 200} and len(fetch["inputs"]["url"]) == 270  # never truncated
    assert parse["error"]["exit_code"] == 2 and parse["inputs"] == {"token": "***SECRET***"}
    assert report["needs"] == [{"task_id": "parse", "state": "FAILED"}]
    assert data["audit_events"][0]["event_type"] == "CREATED"
    assert all(e["timestamp"].endswith("Z") for e in data["audit_events"])


async def test_list_table(tmp_path: Path) -> None:
    async with open_database(tmp_path / "k.db") as db:
        await simple_success(db, "ex-success")
        await _failed(db)
        rows = [await ExecutionInspector(db).snapshot(i) for i in ("ex-failed", "ex-success")]
    executions = [s.execution for s in rows]
    counts = {"ex-failed": {"SUCCESS": 1, "FAILED": 1, "CANCELLED": 1}, "ex-success": {"SUCCESS": 2}}
    assert render(F.execution_list_table(executions, counts, T0)) == (
        "ID          WORKFLOW  STATE    STARTED                  DURATION  TASKS\n"
        "ex-failed   hello     FAILED   2026-11-21 10:15:30.000  3.5s      1 SUCCESS 1 FAILED 1 CANCELLED\n"
        "ex-success  hello     SUCCESS  2026-11-21 10:15:30.000  2.8s      2 SUCCESS\n"
    )
    data = F.execution_list_json(executions, counts, T0)
    assert data[1]["task_states"] == {"SUCCESS": 2} and data[1]["duration_ms"] == 2800


def test_literal_line_keeps_a_message_on_one_line() -> None:
    assert F.literal_line("019c8c0a-plain id") == "019c8c0a-plain id"  # printable: unchanged
    assert F.literal_line("\x1b[31m1680\nab\tc\rd\x00\u2028\u202e") == "\\x1b[31m1680\\nab\\tc\\rd\\x00\\u2028\\u202e"
    assert F.literal("a\nb\tc") == "a\nb\tc"  # log text keeps its layout
    # ...but not a Unicode line separator, which some terminals break on without a newline
    assert F.literal("a\u2028[INFO] fake\u2029") == "a\\u2028[INFO] fake\\u2029"


def test_list_on_an_80_column_terminal_keeps_every_column_and_whole_ids():
    from kestra_trio.storage.rows import ExecutionRow

    row = ExecutionRow(
        id="ea18507c2a0829e3", workflow_id="fan-out-fan-in", namespace="default", state="CANCELLED",
        reason_code=None, message=None, trigger_type="manual", inputs={}, workflow_path=None,
        created_at=T0, started_at=T0, ended_at=T0 + 1600, updated_at=T0, timeout_ms=None,
        log_entry_count=0, task_count=2, failed_task_id=None, cancelled_by=None, engine_pid=None, engine_host=None,
    )
    text = render(F.execution_list_table([row], {row.id: {"CANCELLED": 2}}, T0), width=80)
    assert "TASKS" in text and "2 CANCELLED" in text and "ea18507c2a0829e3" in text


async def test_inspect_says_how_many_log_entries_were_lost(tmp_path: Path) -> None:
    async def lossy(db) -> None:
        await _failed(db)
        await db.write(lambda raw: raw.execute("UPDATE executions SET log_entries_lost = 74341 WHERE id = 'ex-failed'"))

    snapshot = await _snapshot(tmp_path, lossy, "ex-failed")
    text = render(F.inspect_view(snapshot))
    assert "Log entries   0\nLost entries  74,341 could not be written (database error; see the ERROR log lines)\n" in text
    assert F.snapshot_json(snapshot)["execution"]["log_entries_lost"] == 74341
    (tmp_path / "clean").mkdir()
    clean = await _snapshot(tmp_path / "clean", _failed, "ex-failed")
    assert "Lost entries" not in render(F.inspect_view(clean))
