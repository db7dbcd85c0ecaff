"""ExecutionStore: guarded transitions, state change + audit in one transaction, cancel requests."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kestra_trio.errors import ExecutionNotFound, IllegalTransition
from kestra_trio.observability.records import AuditEvent, AuditEventType
from kestra_trio.state.states import State
from kestra_trio.storage.audit import AuditStore
from kestra_trio.storage.db import Database, open_database
from kestra_trio.storage.executions import (
    AttemptWrite,
    ExecutionStore,
    NewExecution,
    NewTaskRun,
    StateChange,
)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_database(tmp_path / "k.db") as database:
        yield database


async def create(store: ExecutionStore, execution_id: str = "ex-1") -> None:
    await store.create(
        NewExecution(
            id=execution_id,
            workflow_id="wf",
            namespace="default",
            trigger_type="manual",
            inputs={"token": "***SECRET***"},
            workflow_path=None,
            timeout_ms=None,
            engine_pid=None,
            engine_host=None,
        ),
        [
            NewTaskRun("a", 0, "core/shell.run", (), 2, None),
            NewTaskRun("b", 1, "core/shell.run", ("a",), 1, None),
        ],
    )


def audit_rows(raw: sqlite3.Connection, execution_id: str = "ex-1") -> list[tuple[str, str]]:
    return raw.execute(
        "SELECT event_type, metadata FROM execution_audit_events WHERE execution_id = ? ORDER BY id",
        (execution_id,),
    ).fetchall()


async def test_create_writes_execution_task_runs_and_created_event(db: Database) -> None:
    store = ExecutionStore(db)
    await create(store)
    execution = await store.get("ex-1")
    assert execution is not None
    assert (execution.state, execution.reason_code, execution.task_count) == ("PENDING", "CREATED", 2)
    runs = await store.task_runs("ex-1")
    assert [(r.task_id, r.state, r.needs) for r in runs] == [("a", "PENDING", []), ("b", "WAITING", ["a"])]
    events = await AuditStore(db).list("ex-1")
    assert [e.event_type for e in events] == ["CREATED"]
    assert events[0].metadata == {"workflow_id": "wf", "trigger_type": "manual", "task_count": 2}


async def test_allowed_transition_writes_state_and_state_change_event(db: Database) -> None:
    store = ExecutionStore(db)
    await create(store)
    [result] = await store.apply(StateChange("ex-1", State.RUNNING, "STARTED", fields={"started_at": 5}))
    assert (result.changed, result.previous, result.audit_failed) == (True, State.PENDING, None)
    execution = await store.get("ex-1")
    assert execution is not None
    assert (execution.state, execution.reason_code, execution.started_at) == ("RUNNING", "STARTED", 5)
    events = await AuditStore(db).list("ex-1")
    assert events[-1].event_type == "STATE_CHANGE"
    assert events[-1].metadata == {
        "entity": "execution", "from_state": "PENDING", "to_state": "RUNNING", "reason": "STARTED",
    }


async def test_same_transition_twice_is_a_no_op(db: Database) -> None:
    store = ExecutionStore(db)
    await create(store)
    await store.apply(StateChange("ex-1", State.RUNNING, "STARTED"))
    before = await db.run(audit_rows)
    [again] = await store.apply(StateChange("ex-1", State.RUNNING, "STARTED"))
    assert (again.changed, again.previous) == (False, State.RUNNING)
    assert await db.run(audit_rows) == before


async def test_illegal_transition_raises_and_writes_nothing(db: Database) -> None:
    store = ExecutionStore(db)
    await create(store)
    await store.apply(StateChange("ex-1", State.RUNNING, "STARTED"))
    before = (await store.get("ex-1"), await db.run(audit_rows))
    with pytest.raises(IllegalTransition, match="RUNNING -> PENDING"):
        # the first change is legal: it must be rolled back with the illegal second one
        await store.apply(
            StateChange("ex-1", State.RUNNING, "STARTED", task_id="a"),
            StateChange("ex-1", State.PENDING, "CREATED"),
        )
    assert (await store.get("ex-1"), await db.run(audit_rows)) == before
    assert [r.state for r in await store.task_runs("ex-1")] == ["PENDING", "WAITING"]


@pytest.mark.parametrize("terminal", [State.SUCCESS, State.FAILED, State.CANCELLED])
async def test_terminal_state_is_immutable(db: Database, terminal: State) -> None:
    store = ExecutionStore(db)
    await create(store)
    await store.apply(StateChange("ex-1", State.RUNNING, "STARTED"))
    await store.apply(StateChange("ex-1", terminal, "COMPLETED"))
    for target in State:
        if target == terminal:
            [result] = await store.apply(StateChange("ex-1", target, "AGAIN"))
            assert not result.changed
            continue
        with pytest.raises(IllegalTransition):
            await store.apply(StateChange("ex-1", target, "LATE"))
    execution = await store.get("ex-1")
    assert execution is not None and execution.state == terminal.value


async def test_task_transition_with_attempt_row(db: Database) -> None:
    store = ExecutionStore(db)
    await create(store)
    await store.apply(
        StateChange(
            "ex-1", State.RUNNING, "STARTED", task_id="a",
            fields={"started_at": 10, "attempt_count": 1}, attempt=AttemptWrite(1, "RUNNING", 10, pid=42),
        )
    )
    await store.apply(
        StateChange(
            "ex-1", State.SUCCESS, "COMPLETED", task_id="a",
            fields={"ended_at": 30, "duration_ms": 20, "outputs": {"x": 1}},
            attempt=AttemptWrite(1, "SUCCESS", 10, ended_at=30, exit_code=0),
        )
    )
    run = (await store.task_runs("ex-1"))[0]
    assert (run.state, run.outputs, run.duration_ms) == ("SUCCESS", {"x": 1}, 20)
    [attempt] = await store.attempts("ex-1", "a")
    assert (attempt.state, attempt.pid, attempt.exit_code, attempt.duration_ms) == ("SUCCESS", 42, 0, 20)


async def test_unknown_execution_raises(db: Database) -> None:
    store = ExecutionStore(db)
    with pytest.raises(ExecutionNotFound):
        await store.apply(StateChange("nope", State.RUNNING, "STARTED"))


async def test_state_change_and_extra_audit_events_commit_together(db: Database) -> None:
    store = ExecutionStore(db)
    await create(store)
    await store.apply(
        StateChange(
            "ex-1", State.FAILED, "TASK_FAILED", fields={"failed_task_id": "a"},
            audit=[AuditEvent("ex-1", AuditEventType.FAILED, {"error_message": "boom", "failed_task_id": "a"})],
        )
    )
    kinds = [kind for kind, _ in await db.run(audit_rows)]
    assert kinds == ["CREATED", "STATE_CHANGE", "FAILED"]


async def test_audit_insert_failure_does_not_block_the_state_change(db: Database) -> None:
    store = ExecutionStore(db)
    await create(store)

    def break_audit(raw: sqlite3.Connection) -> None:
        # a TEMP trigger lives on this connection only: the store's writes go through it
        raw.execute(
            "CREATE TEMP TRIGGER audit_broken BEFORE INSERT ON main.execution_audit_events "
            "BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END"
        )

    await db.run(break_audit)
    [result] = await store.apply(
        StateChange(
            "ex-1", State.RUNNING, "STARTED",
            audit=[AuditEvent("ex-1", AuditEventType.STARTED, {})],
        )
    )
    assert result.changed
    assert result.audit_failed is not None and "disk full (simulated)" in result.audit_failed
    execution = await store.get("ex-1")
    assert execution is not None and execution.state == "RUNNING"
    assert [kind for kind, _ in await db.run(audit_rows)] == ["CREATED"]  # no partial audit batch

    await db.run(lambda raw: raw.execute("DROP TRIGGER temp.audit_broken"))
    [result] = await store.apply(StateChange("ex-1", State.SUCCESS, "COMPLETED"))
    assert result.audit_failed is None
    assert [kind for kind, _ in await db.run(audit_rows)] == ["CREATED", "STATE_CHANGE"]


async def test_cancel_request_is_idempotent(db: Database) -> None:
    store = ExecutionStore(db)
    await create(store)
    _, first = await store.request_cancel("ex-1", "user", "stop")
    _, second = await store.request_cancel("ex-1", "user", "stop again")
    assert (first, second) == (True, False)
    assert await store.has_cancel_request("ex-1")
    taken = await store.take_cancel_requests("ex-1")
    assert [(r.requested_by, r.reason) for r in taken] == [("user", "stop")]
    assert not await store.has_cancel_request("ex-1")
    assert await store.take_cancel_requests("ex-1") == []
    # the engine took it and is stopping: a third request changes nothing either
    _, third = await store.request_cancel("ex-1", "user", "stop, please")
    assert third is False and not await store.has_cancel_request("ex-1")
    kinds = [kind for kind, _ in await db.run(audit_rows)]
    assert kinds.count("CANCEL_REQUESTED") == 1


async def test_cancel_request_on_terminal_execution_is_ignored(db: Database) -> None:
    store = ExecutionStore(db)
    await create(store)
    await store.apply(StateChange("ex-1", State.CANCELLED, "USER_CANCELLED"))
    execution, created = await store.request_cancel("ex-1", "user", None)
    assert not created and execution.state == "CANCELLED"
    with pytest.raises(ExecutionNotFound):
        await store.request_cancel("missing", "user", None)


async def test_resolve_id_by_unique_prefix(db: Database) -> None:
    store = ExecutionStore(db)
    await create(store, "abcd-1111")
    await create(store, "abcd-2222")
    assert await store.resolve_id("abcd-1111") == "abcd-1111"
    assert await store.resolve_id("abcd-2") == "abcd-2222"
    with pytest.raises(ExecutionNotFound):
        await store.resolve_id("abcd")  # ambiguous


async def test_a_lone_surrogate_is_stored_replaced_not_refused(db: Database) -> None:
    # e.g. an undecodable file name in an OSError message: SQLite's UTF-8 binding refuses it
    store = ExecutionStore(db)
    await create(store)
    await store.apply(StateChange("ex-1", State.RUNNING, "STARTED"))
    await store.apply(
        StateChange(
            "ex-1", State.FAILED, "PLUGIN_FAILED", "bad \udcff name", task_id="a",
            fields={"error": {"message": "bad \udcff name", "\ud800": ["\udfff"]}},
        )
    )
    [run] = [r for r in await store.task_runs("ex-1") if r.task_id == "a"]
    assert (run.state, run.message) == ("FAILED", "bad \ufffd name")
    assert run.error == {"message": "bad \ufffd name", "\ufffd": ["\ufffd"]}
