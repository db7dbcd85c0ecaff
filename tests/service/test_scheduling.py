"""The scheduling service parts in-process, with a real SQLite file and real plugin processes:
concurrency limits at claim, flow triggers (once per ended execution, also across a
restart), the --workflows folder (apply, change, broken file, removal)."""

from __future__ import annotations

import contextlib
import sqlite3
import textwrap
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio

from kestra_trio.model.loading import load_workflow_text
from kestra_trio.model.workflow import Workflow
from kestra_trio.service.app import Service, open_service
from kestra_trio.service.folder import WorkflowFolder
from kestra_trio.service.registry import load_file
from kestra_trio.service.scheduling import run_scheduling
from kestra_trio.state.states import State
from kestra_trio.storage.executions import DEFAULT_QUEUE
from kestra_trio.storage.triggers import TriggerStore

from test_service import REGISTRY, config, rows  # (tests/service: the same real service and database)


def limited(behavior: str) -> str:
    return textwrap.dedent(f"""
        id: limited
        concurrency: {{limit: 1, behavior: {behavior}}}
        tasks:
          - id: a
            type: core/shell.run
            inputs: {{command: "sleep 0.3"}}
        """)


# ---------------------------------------------------------------- concurrency


async def test_concurrency_queue_holds_the_next_execution_queued_until_one_ends(tmp_path: Path) -> None:
    errors: list[str] = []
    workflow = load_workflow_text(limited("queue"), catalog=REGISTRY)
    async with open_service(config(tmp_path, errors)) as service:
        ids = [await service.enqueue(workflow, {}) for _ in range(3)]
        results = [await service.wait(execution_id) for execution_id in ids]
    assert [r.state for r in results] == [State.SUCCESS] * 3, errors
    spans = sorted(rows(tmp_path, "SELECT started_at, ended_at FROM executions"))
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start  # never two at once
    # each waited visibly: QUEUED, then claimed only after the one before it ended
    assert rows(tmp_path, "SELECT count(*) FROM execution_audit_events WHERE event_type = 'QUEUED'") == [(3,)]


@pytest.mark.parametrize(("behavior", "state", "event"), [("cancel", "CANCELLED", "CANCELLED"), ("fail", "FAILED", "FAILED")])
async def test_concurrency_cancel_or_fail_ends_the_new_execution_at_once(
    tmp_path: Path, behavior: str, state: str, event: str
) -> None:
    errors: list[str] = []
    workflow = load_workflow_text(limited(behavior), catalog=REGISTRY)
    async with open_service(config(tmp_path, errors)) as service:
        first = await service.enqueue(workflow, {})
        second = await service.enqueue(workflow, {})
        refused = await service.wait(second)
        ran = await service.wait(first)
    assert (ran.state, refused.state, refused.reason_code) == (State.SUCCESS, State(state), "CONCURRENCY_LIMIT")
    [(row_state, reason, message)] = rows(tmp_path, "SELECT state, reason_code, message FROM executions WHERE id = ?", second)
    assert (row_state, reason) == (state, "CONCURRENCY_LIMIT")
    assert "already runs 1 execution(s), its concurrency limit" in message
    events = [e for (e,) in rows(tmp_path, "SELECT event_type FROM execution_audit_events WHERE execution_id = ? ORDER BY id", second)]
    assert events[:2] == ["CREATED", "QUEUED"] and events[-1] == event and events.count(event) == 1
    assert rows(tmp_path, "SELECT state, reason_code, started_at FROM task_runs WHERE execution_id = ?", second) == [
        ("CANCELLED", "CONCURRENCY_LIMIT", None)
    ]
    [(line,)] = rows(tmp_path, "SELECT message FROM execution_logs WHERE execution_id = ? AND level = 'WARN'", second)
    assert line.startswith(f"Execution {state.lower()} at once: workflow limited already runs 1 execution(s)")


async def test_a_limited_workflow_waiting_does_not_hold_back_other_workflows(tmp_path: Path) -> None:
    errors: list[str] = []
    limited_workflow = load_workflow_text(limited("queue"), catalog=REGISTRY)
    other = load_workflow_text("id: other\ntasks:\n  - {id: a, type: core/shell.run, inputs: {command: 'true'}}\n", catalog=REGISTRY)
    async with open_service(config(tmp_path, errors)) as service:
        blocked = [await service.enqueue(limited_workflow, {}) for _ in range(2)]
        free = await service.enqueue(other, {})
        result = await service.wait(free)
        [(second_state,)] = rows(tmp_path, "SELECT state FROM executions WHERE id = ?", blocked[1])
        for execution_id in blocked:
            await service.wait(execution_id)
    assert result.state == State.SUCCESS
    assert second_state == "QUEUED"  # the other workflow ran while it waited its turn


# ---------------------------------------------------------------- flow triggers

UPSTREAM = """
id: upstream
inputs: [{name: fail, type: boolean, default: false}]
tasks:
  - id: a
    type: core/shell.run
    inputs: {command: "{{ 'exit 1' if inputs.fail else 'true' }}"}
"""
DOWNSTREAM = """
id: downstream
triggers:
  - id: after_upstream
    type: flow
    workflow: upstream
    states: [SUCCESS]
    inputs: {parent: "{{ trigger.execution_id }}"}
inputs: [{name: parent, type: string}]
tasks:
  - id: a
    type: core/shell.run
    inputs: {command: "echo parent={{ inputs.parent }} via {{ trigger.type }} {{ trigger.execution_id }}"}
"""


def write_workflows(folder: Path, **texts: str) -> None:
    folder.mkdir(exist_ok=True)
    for name, text in texts.items():
        (folder / f"{name}.yaml").write_text(textwrap.dedent(text))


async def wait_for(tmp_path: Path, sql: str, expected, *params) -> None:
    """Poll the database (the real condition) until `sql` gives `expected`."""
    with trio.fail_after(30):
        while rows(tmp_path, sql, *params) != expected:
            await trio.sleep(0.05)


@contextlib.asynccontextmanager
async def scheduling(tmp_path: Path, errors: list[str]) -> AsyncIterator[tuple[Service, Workflow]]:
    """A server's service parts over a folder holding `upstream` and its follower `downstream`."""
    folder = tmp_path / "workflows"
    write_workflows(folder, upstream=UPSTREAM, downstream=DOWNSTREAM)
    async with open_service(config(tmp_path, errors, queues=(DEFAULT_QUEUE,))) as service:
        await service.start(partial(run_scheduling, service, workflows_dir=folder))
        yield service, load_file(folder / "upstream.yaml", REGISTRY).workflow


async def test_a_flow_trigger_starts_the_follower_once_per_matching_end(tmp_path: Path) -> None:
    errors: list[str] = []
    async with scheduling(tmp_path, errors) as (service, upstream):
        ok = await service.run(upstream, {"fail": False}, workflow_revision=1)
        failed = await service.run(upstream, {"fail": True}, workflow_revision=1)
        await wait_for(tmp_path, "SELECT state FROM executions WHERE workflow_id = 'downstream'", [("SUCCESS",)])
        await wait_for(tmp_path, "SELECT count(*) FROM execution_ends", [(0,)])  # every end consumed
    assert (ok.state, failed.state) == (State.SUCCESS, State.FAILED)
    [(execution_id, trigger_type, trigger_data)] = rows(
        tmp_path, "SELECT id, trigger_type, trigger_data FROM executions WHERE workflow_id = 'downstream'"
    )
    assert trigger_type == "flow"
    assert f'"execution_id":"{ok.execution_id}"' in trigger_data
    assert rows(tmp_path, "SELECT message FROM execution_logs WHERE execution_id = ? AND source LIKE 'plugin:%'", execution_id) == [
        (f"parent={ok.execution_id} via flow {ok.execution_id}",)
    ]
    assert rows(tmp_path, "SELECT kind, fire_key, upstream_execution_id FROM trigger_fires") == [
        ("flow", ok.execution_id, ok.execution_id)
    ]
    assert errors == []


async def test_an_end_seen_again_after_a_crash_fires_nothing_twice(tmp_path: Path) -> None:
    errors: list[str] = []
    async with scheduling(tmp_path, errors) as (service, upstream):
        ok = await service.run(upstream, {"fail": False}, workflow_revision=1)
        await wait_for(tmp_path, "SELECT state FROM executions WHERE workflow_id = 'downstream'", [("SUCCESS",)])
        # a process that fired, then died before it consumed the end: the end is there again
        with sqlite3.connect(tmp_path / "k.db") as conn:
            conn.execute(
                "INSERT INTO execution_ends (execution_id, workflow_id, namespace, state, ended_at) "
                "VALUES (?, 'upstream', 'default', 'SUCCESS', 0)", (ok.execution_id,),
            )
        await wait_for(tmp_path, "SELECT count(*) FROM execution_ends", [(0,)])
    assert rows(tmp_path, "SELECT count(*) FROM executions WHERE workflow_id = 'downstream'") == [(1,)]
    assert errors == []


async def test_a_disabled_follower_is_not_started(tmp_path: Path) -> None:
    errors: list[str] = []
    async with scheduling(tmp_path, errors) as (service, upstream):
        await service.workflows.set_enabled("downstream", False)
        await service.run(upstream, {"fail": False}, workflow_revision=1)
        await wait_for(tmp_path, "SELECT count(*) FROM execution_ends", [(0,)])
    assert rows(tmp_path, "SELECT count(*) FROM executions WHERE workflow_id = 'downstream'") == [(0,)]


# ---------------------------------------------------------------- the --workflows folder


async def test_the_folder_applies_changes_keeps_a_broken_files_revision_and_disables_removed_files(
    tmp_path: Path,
) -> None:
    errors: list[str] = []
    infos: list[str] = []
    folder = tmp_path / "workflows"
    write_workflows(folder, upstream=UPSTREAM, downstream=DOWNSTREAM)
    async with open_service(config(tmp_path, errors)) as service:
        watcher = WorkflowFolder(service.workflows, REGISTRY, folder, on_error=errors.append, on_info=infos.append)
        await watcher.sync()
        assert [(w.id, w.revision, w.enabled) for w in await service.workflows.list()] == [
            ("downstream", 1, True), ("upstream", 1, True)
        ]
        (folder / "upstream.yaml").write_text(textwrap.dedent(UPSTREAM) + "description: changed\n")
        await watcher.sync()
        assert (await service.workflows.get("upstream")).revision == 2
        (folder / "upstream.yaml").write_text("id: upstream\ntasks: [oops\n")  # broken
        await watcher.sync()
        await watcher.sync()  # (nothing changed: not reported again)
        upstream = await service.workflows.get("upstream")
        assert (upstream.revision, upstream.enabled) == (2, True)  # the old revision stays active
        (folder / "downstream.yaml").unlink()
        await watcher.sync()
        assert (await service.workflows.get("downstream")).enabled is False
        write_workflows(folder, downstream=DOWNSTREAM)
        await watcher.sync()
        downstream = await service.workflows.get("downstream")
        assert (downstream.revision, downstream.enabled) == (1, True)  # same text: no new revision
    assert len(errors) == 1 and "upstream.yaml is not applied, the registry keeps its current revision" in errors[0]
    assert any("downstream: disabled, its file" in line for line in infos)


async def test_an_operator_disable_is_not_undone_by_the_folder(tmp_path: Path) -> None:
    errors: list[str] = []
    folder = tmp_path / "workflows"
    write_workflows(folder, upstream=UPSTREAM)
    async with open_service(config(tmp_path, errors)) as service:
        watcher = WorkflowFolder(service.workflows, REGISTRY, folder, on_error=errors.append)
        await watcher.sync()
        await service.workflows.set_enabled("upstream", False)
        (folder / "upstream.yaml").write_text(textwrap.dedent(UPSTREAM) + "description: changed\n")
        await watcher.sync()
        upstream = await service.workflows.get("upstream")
    assert (upstream.revision, upstream.enabled) == (2, False)
    assert errors == []


async def test_fire_records_are_pruned_with_retention_and_a_pruned_fire_is_not_needed_again(tmp_path: Path) -> None:
    from kestra_trio.service.triggers.catalog import ActiveWorkflow
    from kestra_trio.service.triggers.fire import fire
    from kestra_trio.storage.triggers import TriggerFire

    folder = tmp_path / "workflows"
    write_workflows(folder, downstream=DOWNSTREAM)
    loaded = load_file(folder / "downstream.yaml", REGISTRY)
    [trigger] = loaded.workflow.triggers
    item = ActiveWorkflow(1, loaded.workflow)
    async with open_service(config(tmp_path, [], queues=(DEFAULT_QUEUE,))) as service:
        await service.workflows.apply([loaded.source])
        store = TriggerStore(service.db)
        first = await fire(service, item, trigger, {"execution_id": "up-1"}, TriggerFire("downstream", trigger.id, "flow", "up-1"))
        again = await fire(service, item, trigger, {"execution_id": "up-1"}, TriggerFire("downstream", trigger.id, "flow", "up-1"))
        assert first is not None and again is None  # the same fire twice: one execution
        [(fired_at,)] = rows(tmp_path, "SELECT fired_at FROM trigger_fires")
        assert await store.prune_fires(fired_at) == 0
        assert await store.prune_fires(fired_at + 1) == 1
        assert await store.fires() == []


async def test_a_missing_folder_is_reported_once_and_disables_nothing(tmp_path: Path) -> None:
    errors: list[str] = []
    folder = tmp_path / "workflows"
    write_workflows(folder, upstream=UPSTREAM)
    async with open_service(config(tmp_path, errors)) as service:
        watcher = WorkflowFolder(service.workflows, REGISTRY, folder, on_error=errors.append)
        await watcher.sync()
        (folder / "upstream.yaml").rename(tmp_path / "upstream.yaml")
        folder.rmdir()
        await watcher.sync()
        await watcher.sync()
        upstream = await service.workflows.get("upstream")
    assert upstream.enabled is True
    assert errors == [f"--workflows {folder}: not a readable directory; the registry stays as it is"]


async def test_a_failing_apply_is_reported_once_and_tried_again(tmp_path: Path, autojump_clock) -> None:
    class LockedStore:
        calls = 0

        async def apply(self, sources):
            LockedStore.calls += 1
            raise sqlite3.OperationalError("database is locked")

    errors: list[str] = []
    folder = tmp_path / "workflows"
    write_workflows(folder, upstream=UPSTREAM)
    watcher = WorkflowFolder(LockedStore(), REGISTRY, folder, on_error=errors.append)  # type: ignore[arg-type]
    with trio.move_on_after(2.5):  # (autojump clock: no real wait)
        await watcher.run()  # started even though the first apply failed
    assert LockedStore.calls >= 2  # tried again at the next looks
    assert errors == [f"--workflows {folder}: cannot apply (database is locked)"]
