"""timeline.build_timeline: offsets from the execution start, attempts as spans, running tasks to now."""

from __future__ import annotations

from factories import T0
from kestra_trio.inspection.timeline import Span, build_timeline
from kestra_trio.storage.rows import AttemptRow, ExecutionRow, TaskRunRow


def execution(state: str = "SUCCESS", started: int | None = T0, ended: int | None = T0 + 3000) -> ExecutionRow:
    return ExecutionRow(
        "ex", "wf", "default", state, None, None, "manual", {}, None, T0 - 5, started, ended, T0, None, 0, 3,
        None, None, None, None,
    )


def run(task_id: str, state: str, started: int | None, ended: int | None, position: int = 0) -> TaskRunRow:
    return TaskRunRow(
        "ex", task_id, position, "core/shell.run", [], state, None, None, 1, 1, None, None, None, None,
        started, ended, None, T0,
    )


def attempt(task_id: str, number: int, state: str, started: int, ended: int | None) -> AttemptRow:
    return AttemptRow("ex", task_id, number, state, None, None, None, None, None, started, ended, None)


def test_offsets_and_parallel_rows() -> None:
    tl = build_timeline(
        execution(),
        [run("a", "SUCCESS", T0 + 100, T0 + 1100), run("b", "SUCCESS", T0 + 600, T0 + 2600), run("c", "PENDING", None, None)],
        [],
        now_ms=T0 + 10_000,
    )
    assert tl.origin_ms == T0 and tl.span == 3000 and not tl.running
    a, b, c = tl.rows
    assert (a.start, a.end, a.duration) == (100, 1100, 1000)
    assert (b.start, b.end) == (600, 2600)
    assert a.spans == (Span(100, 1100, "SUCCESS"),)
    assert c.start is None and c.spans == () and c.duration is None


def test_retries_become_spans_with_a_gap() -> None:
    tl = build_timeline(
        execution(),
        [run("a", "SUCCESS", T0, T0 + 3000)],
        [attempt("a", 1, "FAILED", T0, T0 + 1000), attempt("a", 2, "SUCCESS", T0 + 2000, T0 + 3000)],
        now_ms=T0 + 10_000,
    )
    assert tl.rows[0].spans == (Span(0, 1000, "FAILED"), Span(2000, 3000, "SUCCESS"))


def test_running_task_is_drawn_to_now() -> None:
    tl = build_timeline(
        execution("RUNNING", ended=None),
        [run("a", "RUNNING", T0 + 500, None)],
        {"a": [attempt("a", 1, "RUNNING", T0 + 500, None)]},
        now_ms=T0 + 150_500,
    )
    row = tl.rows[0]
    assert tl.running and tl.span == 150_500
    assert row.running and row.end == 150_500 and row.duration == 150_000
    assert row.spans == (Span(500, 150_500, "RUNNING", running=True),)


def test_origin_falls_back_to_first_task_start() -> None:
    tl = build_timeline(execution(started=None, ended=None, state="FAILED"), [run("a", "FAILED", T0 + 50, T0 + 80)], [], T0)
    assert tl.origin_ms == T0 + 50 and tl.rows[0].start == 0 and tl.span == 30
