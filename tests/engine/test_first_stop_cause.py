"""Two stops of one task (its own timeout and an execution stop): the first cause is recorded,
when it happens (docs/engine.md "Timeouts"). Driven in-process on pytest-trio's autojump clock,
with a runtime that behaves like a plugin ignoring SIGTERM, so the order of the stops is exact."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio
import trio.testing

from kestra_trio.engine.context import EngineOptions, StopRequest
from kestra_trio.model.loading import load_workflow
from kestra_trio.plugin_runtime.registry import PluginRegistry
from kestra_trio.plugin_runtime.runtime import Outcome, ProcessHandle
from kestra_trio.service.app import Service, ServiceConfig, open_service
from kestra_trio.state.states import Reason, State
from kestra_trio.storage.db import open_database
from kestra_trio.testing.clock import RealTimeDatabase, TimeSkipping

KILL_GRACE = 3.0


class TermIgnoringRuntime:
    """Every attempt runs until stopped, then ignores SIGTERM for the whole kill grace (on
    trio's clock) and dies of SIGKILL. At that moment it reads what the database already says
    about the task (a timeout must be on record before its process is gone)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.sigterm = trio.Event()
        self.sigterm_at: list[float] = []
        self.on_record_at_sigkill: list[tuple[list[Any], list[Any]]] = []

    def __call__(self, run: Any, policy: Any) -> TermIgnoringRuntime:
        return self

    async def run_action(self, invocation: Any, *, log_send: Any, task_status: Any = trio.TASK_STATUS_IGNORED) -> Outcome:
        handle = ProcessHandle(pid=4242, pgid=4242)
        task_status.started(handle)
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                handle.killed_by_us, handle.signal_sent = True, "SIGTERM"
                self.sigterm_at.append(trio.current_time())
                self.sigterm.set()
                await trio.sleep(KILL_GRACE)
                handle.signal_sent, handle.exit_code = "SIGKILL", -signal.SIGKILL
                handle.escalation = "the 3s grace period ran out"
                with sqlite3.connect(self.db_path) as conn:
                    self.on_record_at_sigkill.append((
                        conn.execute("SELECT metadata FROM execution_audit_events WHERE event_type = 'TIMEOUT'").fetchall(),
                        conn.execute("SELECT message FROM execution_logs WHERE message LIKE '%reached its timeout%'").fetchall(),
                    ))
            raise
        raise AssertionError("unreachable")


@contextlib.asynccontextmanager
async def service_with(tmp_path: Path) -> AsyncIterator[tuple[Service, TermIgnoringRuntime]]:
    """A service on a real SQLite file whose database calls run in real time (see
    `kestra_trio.testing.clock`) and every other wait on the autojump clock."""
    db_path = tmp_path / "kt.db"
    runtime = TermIgnoringRuntime(db_path)
    time = TimeSkipping(trio.lowlevel.current_clock())
    options = EngineOptions(handle_signals=False, kill_grace=KILL_GRACE)
    config = ServiceConfig(db_path, PluginRegistry.discover(), options, wrap_runtimes=lambda _inner: runtime)
    time.hold()  # starting and closing the service is real work
    try:
        async with open_database(db_path) as db, open_service(config, db=RealTimeDatabase(db, time)) as service:
            time.release()
            try:
                yield service, runtime
            finally:
                time.hold()
    finally:
        time.release()


async def run_yaml(service: Service, tmp_path: Path, text: str, *, interrupt_after: float | None = None,
                   runtime: TermIgnoringRuntime | None = None) -> Any:
    """Run the workflow; with `interrupt_after`, stop it like Ctrl+C that long after the first SIGTERM."""
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text))
    workflow = load_workflow(path, catalog=PluginRegistry.discover())
    result: list[Any] = []
    async with trio.open_nursery() as nursery:
        async def run() -> None:
            result.append(await service.run(workflow, {}, workflow_path=str(path)))

        nursery.start_soon(run)
        if interrupt_after is not None and runtime is not None:
            await runtime.sigterm.wait()
            await trio.sleep(interrupt_after)
            await service.stop(StopRequest(Reason.EXECUTION_CANCELLED, "user", "received SIGINT", signal=int(signal.SIGINT)))
    return result[0]


def rows(tmp_path: Path, sql: str) -> list[Any]:
    with sqlite3.connect(tmp_path / "kt.db") as conn:
        return conn.execute(sql).fetchall()


def audit(tmp_path: Path, event_type: str) -> list[dict[str, Any]]:
    return [json.loads(m) for (m,) in rows(
        tmp_path, f"SELECT metadata FROM execution_audit_events WHERE event_type = '{event_type}' ORDER BY id")]


TASK_TIMEOUT_THEN_EXECUTION_TIMEOUT = """
    id: to2
    timeout: 2s
    tasks:
      - id: a
        type: core/shell.run
        timeout: 1s
        inputs: {command: 'trap "" TERM; sleep 30'}
"""


async def test_a_task_timeout_then_the_execution_timeout_records_the_task_timeout(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with service_with(tmp_path) as (service, runtime):
        result = await run_yaml(service, tmp_path, TASK_TIMEOUT_THEN_EXECUTION_TIMEOUT)
    # the execution: its own timeout, with its own audit event
    assert (result.state, result.reason_code, result.message) == (State.FAILED, "TIMEOUT", "execution timeout of 2s reached")
    # the task: its timeout came first (as without the execution timeout)
    assert rows(tmp_path, "SELECT state, reason_code, error FROM task_runs")[0][:2] == ("FAILED", "TIMEOUT")
    [(error,)] = rows(tmp_path, "SELECT error FROM task_runs")
    assert json.loads(error)["message"] == "task timed out after 1s"
    assert rows(tmp_path, "SELECT state, reason_code, signal FROM task_attempts") == [("TIMED_OUT", "TIMEOUT", "SIGKILL")]
    assert [(e["scope"], e.get("task_id")) for e in audit(tmp_path, "TIMEOUT")] == [("task", "a"), ("execution", None)]
    assert audit(tmp_path, "TIMEOUT")[0]["timeout_duration"] == "1s"
    # recorded when it fired: before the execution timeout's line, and before the process was gone
    messages = [m for (m,) in rows(tmp_path, "SELECT message FROM execution_logs WHERE level = 'ERROR' ORDER BY id")]
    assert messages[0].startswith("Task a reached its timeout of 1s (attempt 1); stopping process group 4242: SIGTERM, then "
                                  "SIGKILL after 3s if it is still running")
    assert messages[1] == "execution timeout of 2s reached"
    [(audit_at_kill, lines_at_kill)] = runtime.on_record_at_sigkill
    assert [json.loads(m)["scope"] for (m,) in audit_at_kill] == ["task"]
    assert len(lines_at_kill) == 1
    # one SIGTERM, from the task timeout: the execution timeout did not start another stop
    assert len(runtime.sigterm_at) == 1


async def test_a_task_timeout_then_ctrl_c_records_the_task_timeout_and_the_cancel(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with service_with(tmp_path) as (service, runtime):
        result = await run_yaml(service, tmp_path, """
            id: to1
            tasks:
              - id: a
                type: core/shell.run
                timeout: 1s
                inputs: {command: 'trap "" TERM; sleep 30'}
        """, interrupt_after=2.2, runtime=runtime)
    assert (result.state, result.reason_code) == (State.CANCELLED, "EXECUTION_CANCELLED")
    assert rows(tmp_path, "SELECT state, reason_code FROM task_runs") == [("FAILED", "TIMEOUT")]
    assert rows(tmp_path, "SELECT state, reason_code, signal FROM task_attempts") == [("TIMED_OUT", "TIMEOUT", "SIGKILL")]
    assert [e["scope"] for e in audit(tmp_path, "TIMEOUT")] == ["task"]
    [cancelled] = audit(tmp_path, "CANCELLED")
    assert (cancelled["cancelled_by"], cancelled["reason"]) == ("user", "received SIGINT")
    [(audit_at_kill, _)] = runtime.on_record_at_sigkill
    assert len(audit_at_kill) == 1
    assert len(runtime.sigterm_at) == 1


async def test_the_execution_timeout_then_a_task_timeout_records_the_execution_timeout(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The reverse order: the task's timeout passes during the kill grace of the execution
    timeout's stop; the stop stays the cause and no task timeout is recorded."""
    async with service_with(tmp_path) as (service, runtime):
        result = await run_yaml(service, tmp_path, """
            id: to3
            timeout: 1s
            tasks:
              - id: a
                type: core/shell.run
                timeout: 2s
                inputs: {command: 'trap "" TERM; sleep 30'}
        """)
    assert (result.state, result.reason_code) == (State.FAILED, "TIMEOUT")
    [(state, reason, error)] = rows(tmp_path, "SELECT state, reason_code, error FROM task_runs")
    assert (state, reason) == ("CANCELLED", "TIMEOUT")
    assert json.loads(error)["message"].startswith(
        "Task cancelled due to execution timeout (execution timeout of 1s reached); sent SIGTERM, then SIGKILL")
    assert rows(tmp_path, "SELECT state FROM task_attempts") == [("CANCELLED",)]
    assert [e["scope"] for e in audit(tmp_path, "TIMEOUT")] == ["execution"]
    assert not rows(tmp_path, "SELECT message FROM execution_logs WHERE message LIKE 'Task a timed out%'")


async def test_a_task_timeout_with_a_retry_left_then_a_stop_keeps_the_attempt_timed_out(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The attempt timed out first; the stop only takes the retry away: the attempt stays
    TIMED_OUT and the task is CANCELLED by the stop, saying so."""
    async with service_with(tmp_path) as (service, runtime):
        result = await run_yaml(service, tmp_path, """
            id: to4
            timeout: 2s
            tasks:
              - id: a
                type: core/shell.run
                timeout: 1s
                retry: {max: 3, delay: 1s}
                inputs: {command: 'trap "" TERM; sleep 30'}
        """)
    assert (result.state, result.reason_code) == (State.FAILED, "TIMEOUT")
    [(state, reason, error)] = rows(tmp_path, "SELECT state, reason_code, error FROM task_runs")
    assert (state, reason) == ("CANCELLED", "TIMEOUT")
    assert "attempt 1 had timed out (sent SIGTERM, then SIGKILL" in json.loads(error)["message"]
    assert rows(tmp_path, "SELECT number, state, reason_code, signal FROM task_attempts") == [
        (1, "TIMED_OUT", "TIMEOUT", "SIGKILL")]
    assert [e["scope"] for e in audit(tmp_path, "TIMEOUT")] == ["task", "execution"]
    assert len(runtime.sigterm_at) == 1
