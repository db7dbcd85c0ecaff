"""The service root and its worker, in-process with a real SQLite file and real plugin processes:
one task limit for every execution of the process, shared queues, shutdown, recovery."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio

from kestra_trio.engine.context import EngineOptions
from kestra_trio.model.loading import load_workflow_text
from kestra_trio.plugin_runtime.registry import PluginRegistry
from kestra_trio.service.app import ServiceConfig, open_service
from kestra_trio.service.registry import load_file
from kestra_trio.state.states import State
from kestra_trio.storage.executions import DEFAULT_QUEUE, NewExecution, NewTaskRun
from kestra_trio.storage.queue import SqliteQueue
from kestra_trio.storage.db import open_database

REGISTRY = PluginRegistry.discover()


def workflow(text: str):
    return load_workflow_text(textwrap.dedent(text), catalog=REGISTRY)


def config(tmp_path: Path, errors: list[str], **kwargs) -> ServiceConfig:
    options = EngineOptions(handle_signals=False, on_error=errors.append, **kwargs.pop("options", {}))
    return ServiceConfig(tmp_path / "k.db", REGISTRY, options, **kwargs)


def rows(tmp_path: Path, sql: str, *params):
    with sqlite3.connect(tmp_path / "k.db") as conn:
        return conn.execute(sql, params).fetchall()


SLEEPY = """
id: sleepy
tasks:
  - id: a
    type: core/shell.run
    inputs: {command: "sleep 0.2"}
  - id: b
    type: core/shell.run
    inputs: {command: "sleep 0.2"}
"""


async def test_max_parallel_bounds_running_tasks_across_every_execution(tmp_path: Path) -> None:
    errors: list[str] = []
    async with open_service(config(tmp_path, errors, options={"max_parallel": 1})) as service:
        ids = [await service.enqueue(workflow(SLEEPY), {}) for _ in range(2)]
        results = [await service.wait(execution_id) for execution_id in ids]
    assert [r.state for r in results] == [State.SUCCESS, State.SUCCESS], errors
    spans = sorted(rows(tmp_path, "SELECT started_at, ended_at FROM task_attempts"))
    assert len(spans) == 4
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start  # never two attempts at once, whichever execution they belong to


async def test_a_shared_queue_execution_waits_for_a_worker_of_that_queue(tmp_path: Path) -> None:
    errors: list[str] = []
    path = tmp_path / "hello.yaml"
    path.write_text("id: hello\ntasks:\n  - id: a\n    type: core/shell.run\n    inputs: {command: 'echo hi'}\n")
    loaded = load_file(path, REGISTRY)
    async with open_service(config(tmp_path, errors)) as producer:  # serves only its private queue
        [applied] = await producer.workflows.apply([loaded.source])
        execution_id = await producer.enqueue(
            loaded.workflow, {}, queue=DEFAULT_QUEUE, workflow_revision=applied.revision, trigger_type="api"
        )
    # the producer is gone: the execution is just a row, still QUEUED, owned by nobody
    assert rows(tmp_path, "SELECT state, engine_pid, queue FROM executions") == [("QUEUED", None, "default")]
    async with open_service(config(tmp_path, errors, queues=(DEFAULT_QUEUE,))) as worker_side:
        with trio.fail_after(30):
            while rows(tmp_path, "SELECT state FROM executions")[0][0] not in ("SUCCESS", "FAILED"):
                await trio.sleep(0.05)
        identity = worker_side.identity
    assert rows(tmp_path, "SELECT state, worker_id, engine_pid, workflow_revision FROM executions WHERE id = ?", execution_id) == [
        ("SUCCESS", identity.worker_id, identity.pid, 1)
    ], errors
    assert ("hi",) in rows(tmp_path, "SELECT message FROM execution_logs WHERE task_id = 'a'")


async def test_a_claimed_execution_whose_revision_is_missing_fails_clearly(tmp_path: Path) -> None:
    errors: list[str] = []
    async with open_database(tmp_path / "k.db") as db:
        await SqliteQueue(db).enqueue(
            NewExecution("ex-1", "ghost", "default", "api", {}, None, None, None, None, DEFAULT_QUEUE, 7),
            [NewTaskRun("a", 0, "core/shell.run", (), 1, None)],
        )
    async with open_service(config(tmp_path, errors, queues=(DEFAULT_QUEUE,))):
        with trio.fail_after(30):
            while rows(tmp_path, "SELECT state FROM executions")[0][0] == "QUEUED" or rows(
                tmp_path, "SELECT state FROM executions"
            )[0][0] == "RUNNING":
                await trio.sleep(0.05)
    assert rows(tmp_path, "SELECT state, reason_code, message FROM executions") == [
        ("FAILED", "INTERNAL_ERROR", "the execution could not start: workflow ghost revision 7 is not in the registry")
    ]
    assert rows(tmp_path, "SELECT state, reason_code FROM task_runs") == [("CANCELLED", "INTERNAL_ERROR")]
    assert any("could not start" in e for e in errors)


async def test_closing_the_service_stops_what_still_runs_with_a_reason(tmp_path: Path) -> None:
    errors: list[str] = []
    long = workflow("id: long\ntasks:\n  - id: a\n    type: core/shell.run\n    inputs: {command: 'echo up; sleep 30'}\n")
    async with open_service(config(tmp_path, errors, options={"kill_grace": 0.5})) as service:
        await service.enqueue(long, {})
        with trio.fail_after(20):  # the plugin process runs once its first line is committed
            while not rows(tmp_path, "SELECT 1 FROM execution_logs WHERE message = 'up'"):
                await trio.sleep(0.05)
    assert rows(tmp_path, "SELECT state, reason_code, message, cancelled_by FROM executions") == [
        ("CANCELLED", "EXECUTION_CANCELLED", "cancelled by system: the service is shutting down", "system")
    ]
    [(error,)] = rows(tmp_path, "SELECT error FROM task_runs")
    assert "the service is shutting down" in error and "SIGTERM" in error


async def test_recovery_fails_a_pinned_execution_of_a_dead_process_and_leaves_shared_ones(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    async with open_database(tmp_path / "k.db") as db:
        queue = SqliteQueue(db)
        task = [NewTaskRun("a", 0, "core/shell.run", (), 1, None)]
        await queue.enqueue(NewExecution("ex-pinned", "wf", "default", "manual", {}, None, None, dead.pid,
                                         socket.gethostname(), "local:gone"), task)
        await queue.enqueue(NewExecution("ex-shared", "wf", "default", "api", {}, None, None, None, None), task)
    errors: list[str] = []
    async with open_service(config(tmp_path, errors)):
        pass
    assert dict(rows(tmp_path, "SELECT id, state || ':' || reason_code FROM executions")) == {
        "ex-pinned": "FAILED:ENGINE_LOST", "ex-shared": "QUEUED:CREATED",
    }
    assert rows(tmp_path, "SELECT state FROM task_runs WHERE execution_id = 'ex-pinned'") == [("FAILED",)]


async def test_an_error_in_the_body_comes_out_as_itself(tmp_path: Path) -> None:
    from kestra_trio.errors import UsageError

    with pytest.raises(UsageError, match="^refused$"):
        async with open_service(config(tmp_path, [])):
            raise UsageError("refused")


ECHO_TRIGGER = """
id: echo-trigger
tasks:
  - id: show
    type: core/shell.run
    inputs: {command: "echo {{ trigger.type }} {{ trigger.body.user }} {{ workflow.revision }}"}
"""


@pytest.mark.parametrize("shared", [False, True], ids=["pinned", "shared-queue"])
async def test_trigger_data_is_stored_and_seen_by_templates(tmp_path: Path, shared: bool) -> None:
    """`{{ trigger.* }}` is what enqueue was given, handed over in memory (pinned) or read back
    from the execution row (a shared queue), and it is stored with the execution."""
    errors: list[str] = []
    path = tmp_path / "echo.yaml"
    path.write_text(ECHO_TRIGGER)
    loaded = load_file(path, REGISTRY)
    queues = (DEFAULT_QUEUE,) if shared else ()
    async with open_service(config(tmp_path, errors, queues=queues)) as service:
        [applied] = await service.workflows.apply([loaded.source])
        execution_id = await service.enqueue(
            loaded.workflow, {}, queue=DEFAULT_QUEUE if shared else None, workflow_revision=applied.revision,
            trigger_type="webhook", trigger={"id": "hook", "body": {"user": "ada"}},
        )
        with trio.fail_after(60):
            while rows(tmp_path, "SELECT state FROM executions WHERE id = ?", execution_id) != [("SUCCESS",)]:
                await trio.sleep(0.05)
    assert errors == []
    [(data,)] = rows(tmp_path, "SELECT trigger_data FROM executions WHERE id = ?", execution_id)
    assert json.loads(data) == {"id": "hook", "body": {"user": "ada"}, "type": "webhook"}
    messages = [m for (m,) in rows(tmp_path, "SELECT message FROM execution_logs WHERE task_id = 'show' AND source LIKE 'plugin:%'")]
    assert messages == [f"webhook ada {applied.revision}"]
