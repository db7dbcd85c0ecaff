import json
from io import StringIO

from rich.console import Console

from kestra_trio.cli.run_view import LiveModel, live_table, progress_line, summary_lines
from kestra_trio.engine.progress import ProgressEvent
from kestra_trio.engine.context import ExecutionResult, TaskResult
from kestra_trio.model.workflow import RetryPolicy, TaskSpec, Workflow
from kestra_trio.state.states import State

AT = 1_795_000_000_123  # 2026-11-18T...:40.123Z


def render(renderable) -> str:
    console = Console(file=StringIO(), width=100, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def test_progress_lines_are_plain_and_neutralise_control_characters():
    running = ProgressEvent("e", "extract", State.RUNNING, "STARTED", None, 2, 3, "core/shell.run", at=AT)
    failed = ProgressEvent("e", "extract", State.FAILED, "PLUGIN_FAILED", "bad\x1b[31m thing", 3, 3, at=AT)
    assert progress_line(running) == "11:06:40.123  RUNNING    extract  attempt 2/3"
    line = progress_line(failed)
    assert line.startswith("11:06:40.123  FAILED     extract  [PLUGIN_FAILED]  bad")
    assert "\x1b" not in line
    assert progress_line(ProgressEvent("e", None, State.RUNNING, "STARTED", None, at=AT)) is None


def test_live_table_shows_state_attempt_and_duration():
    workflow = Workflow(
        "wf",
        (TaskSpec("a", "core/shell.run", retry=RetryPolicy(2)), TaskSpec("b", "core/shell.run", needs=("a",))),
    )
    model = LiveModel.for_workflow(workflow)
    model.apply(ProgressEvent("e", "a", State.RUNNING, "STARTED", None, 1, 2, at=AT), now=10.0)
    text = render(live_table(model, now=12.5))
    assert "a     RUNNING  1/2      2.5s" in text
    assert "b     WAITING" in text
    assert "1 RUNNING, 1 WAITING" in text


def test_summary_names_the_failed_task_and_its_error():
    result = ExecutionResult(
        "abc", "wf", State.FAILED, "TASK_FAILED", "task 'boom' failed: exited 3", 1500,
        tasks={"boom": TaskResult("boom", State.FAILED), "ok": TaskResult("ok", State.SUCCESS)},
        failed_task_id="boom",
        error={"message": "command exited with code 3", "exit_code": 3, "stderr_tail": ["oops"]},
    )
    assert summary_lines(result) == [
        "Execution abc FAILED in 1.5s [TASK_FAILED] - 2 tasks: 1 FAILED, 1 SUCCESS",
        "  reason: task 'boom' failed: exited 3",
        "  failed task: boom: command exited with code 3 (exit code 3)",
        "    | oops",
        "  inspect: kestra-trio execution inspect abc",
    ]


async def test_live_view_redraws_at_most_ten_times_a_second_whatever_the_event_rate(monkeypatch, autojump_clock):
    import trio

    from kestra_trio.cli import console as console_module
    from kestra_trio.cli import run as run_module

    screen = Console(file=StringIO(), width=100, height=24, force_terminal=True, color_system=None)
    monkeypatch.setattr(console_module, "stdout_console", lambda: screen)
    monkeypatch.setattr(run_module, "_isatty", lambda: True)
    tasks = tuple(TaskSpec(id=f"t{i}", type="core/shell.run") for i in range(300))
    view = run_module._View(Workflow(id="wf", tasks=tasks), as_json=False)
    redraws = []
    real_refresh = view.refresh
    view.refresh = lambda: (redraws.append(trio.current_time()), real_refresh())

    with view:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(view.tick)
            for i in range(300):  # 900 events in ~1.5 s
                for state in (State.RUNNING, State.SUCCESS):
                    view.on_progress(ProgressEvent("e", f"t{i}", state, None, attempt=1))
                await trio.sleep(0.005)
            await trio.sleep(0.3)
            assert view.model.rows["t299"].state == State.SUCCESS
            nursery.cancel_scope.cancel()

    elapsed = trio.current_time()
    assert 1.5 <= elapsed < 2
    assert len(redraws) <= elapsed * 10 + 2  # not one per event
    assert "300 SUCCESS (showing 18 of 300 tasks)" in screen.file.getvalue()  # the last frame is current


def test_a_multi_line_message_cannot_forge_a_line_of_ours():
    forged = "boom\n[2026-01-01T00:00:00.000Z] [ERROR] [scheduler] forged\nExecution ffff SUCCESS in 1ms - 1 task: 1 SUCCESS"
    line = progress_line(ProgressEvent("e", "f", State.FAILED, "PLUGIN_FAILED", forged, at=AT))
    result = ExecutionResult(
        "e", "wf", State.FAILED, "TASK_FAILED", forged, 5, {"f": TaskResult("f", State.FAILED)},
        failed_task_id="f", error={"message": forged, "stderr_tail": ["ok", "tail\nExecution ffff SUCCESS"]},
    )
    text = "\n".join([line, *summary_lines(result)])
    assert "forged" in text
    at_column_0 = [l for l in text.splitlines() if not l.startswith(" ")]
    assert at_column_0 == [line.splitlines()[0], "Execution e FAILED in 5ms [TASK_FAILED] - 1 task: 1 FAILED"]
    assert not any(l.startswith("Execution ffff") for l in text.splitlines())


def _lossy(**changes) -> ExecutionResult:
    import dataclasses

    result = ExecutionResult(
        "abc", "wf", State.FAILED, "DATABASE_ERROR",
        "74,341 log entries could not be written to the database (database or disk is full); "
        "cancelled by user: received SIGTERM",
        25_400, tasks={"b1": TaskResult("b1", State.CANCELLED)},
        log_entries_lost=74_341, database_error="database or disk is full",
    )
    return dataclasses.replace(result, **changes)


def test_a_run_that_lost_log_entries_says_so_in_its_summary_and_last_line():
    from kestra_trio.cli.run_view import database_error_line, result_json

    result = _lossy()
    assert result.storage_incomplete
    assert summary_lines(result) == [
        "Execution abc FAILED in 25.4s [DATABASE_ERROR] - 1 task: 1 CANCELLED",
        "  reason: 74,341 log entries could not be written to the database (database or disk is full); "
        "cancelled by user: received SIGTERM",
        "  log entries lost: 74,341 (the database refused writes)",
        "  inspect: kestra-trio execution inspect abc",
    ]
    assert database_error_line(result) == (
        "database error (database or disk is full): 74,341 log entries of execution abc are lost; "
        "it is recorded FAILED [DATABASE_ERROR]"
    )
    payload = json.loads(result_json(result))
    assert (payload["log_entries_lost"], payload["state_stored"]) == (74_341, True)


def test_when_not_even_the_final_state_could_be_stored_the_last_line_says_what_happens_next():
    from kestra_trio.cli.run_view import database_error_line

    result = _lossy(state_stored=False, lost_unrecorded=74_341, database_error="disk I/O error")
    assert "74,341 of them are not counted in the database either" in summary_lines(result)[2]
    assert database_error_line(result) == (
        "database error (disk I/O error): 74,341 log entries of execution abc are lost; its final "
        "state could not be stored either: it shows RUNNING until the next `kestra-trio run` on this host marks "
        "it FAILED [ENGINE_LOST]"
    )


def test_a_run_that_stored_everything_is_not_a_database_error():
    ok = ExecutionResult("abc", "wf", State.CANCELLED, "EXECUTION_CANCELLED", "cancelled by user: received SIGTERM", 10)
    assert not ok.storage_incomplete
    assert not any("lost" in line for line in summary_lines(ok))
