"""SqliteQueue: enqueue QUEUED, claim = the QUEUED → RUNNING transition for one worker, heartbeat,
release, and cancelling an execution that never ran."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kestra_trio.storage.audit import AuditStore
from kestra_trio.storage.db import Database, open_database
from kestra_trio.storage.executions import DEFAULT_QUEUE, ExecutionStore, NewExecution, NewTaskRun
from kestra_trio.storage.logs import LogFilter, LogStore
from kestra_trio.storage.ports import WorkerIdentity
from kestra_trio.storage.queue import SqliteQueue


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_database(tmp_path / "k.db") as database:
        yield database


def new(execution_id: str, queue: str = DEFAULT_QUEUE, *, pid: int | None = None, revision: int | None = 3) -> NewExecution:
    return NewExecution(
        id=execution_id, workflow_id="wf", namespace="default", trigger_type="manual", inputs={},
        workflow_path=None, timeout_ms=None, engine_pid=pid, engine_host="host-a" if pid else None,
        queue=queue, workflow_revision=revision,
    )


TASKS = [NewTaskRun("a", 0, "core/shell.run", (), 1, None), NewTaskRun("b", 1, "core/shell.run", ("a",), 1, None)]
WORKER = WorkerIdentity("w1", 111, "host-a")
OTHER = WorkerIdentity("w2", 222, "host-b")


async def test_enqueue_creates_a_queued_execution_with_its_audit(db: Database) -> None:
    await SqliteQueue(db).enqueue(new("ex-1"), TASKS, at=1000)
    row = await ExecutionStore(db).get("ex-1")
    assert row is not None
    assert (row.state, row.reason_code, row.queue, row.workflow_revision, row.worker_id) == (
        "QUEUED", "CREATED", "default", 3, None,
    )
    events = await AuditStore(db).list("ex-1")
    assert [(e.event_type, e.metadata.get("queue"), e.metadata.get("workflow_revision")) for e in events] == [
        ("CREATED", None, 3), ("QUEUED", "default", None),
    ]
    assert [(t.task_id, t.state) for t in await ExecutionStore(db).task_runs("ex-1")] == [("a", "PENDING"), ("b", "WAITING")]


async def test_claim_takes_the_oldest_of_its_queues_and_makes_it_running_for_the_worker(db: Database) -> None:
    queue = SqliteQueue(db)
    await queue.enqueue(new("ex-new"), TASKS, at=3000)
    await queue.enqueue(new("ex-old"), TASKS, at=1000)
    await queue.enqueue(new("ex-elsewhere", "other"), TASKS, at=500)
    [claimed] = await queue.claim(WORKER, [DEFAULT_QUEUE])
    assert claimed.id == "ex-old"
    assert (claimed.state, claimed.reason_code, claimed.worker_id, claimed.engine_pid, claimed.engine_host) == (
        "RUNNING", "STARTED", "w1", 111, "host-a",
    )
    assert claimed.started_at == claimed.claimed_at == claimed.heartbeat_at
    events = await AuditStore(db).list("ex-old")
    assert [e.event_type for e in events][-2:] == ["STATE_CHANGE", "STARTED"]
    assert events[-2].metadata["from_state"] == "QUEUED" and events[-2].metadata["to_state"] == "RUNNING"
    # a claimed execution is nobody else's; the other queue is not served
    assert [r.id for r in await queue.claim(OTHER, [DEFAULT_QUEUE], limit=10)] == ["ex-new"]
    assert await queue.claim(OTHER, [DEFAULT_QUEUE], limit=10) == []
    assert (await ExecutionStore(db).get("ex-elsewhere")).state == "QUEUED"  # type: ignore[union-attr]


async def test_claim_respects_its_limit(db: Database) -> None:
    queue = SqliteQueue(db)
    for index in range(5):
        await queue.enqueue(new(f"ex-{index}"), TASKS, at=1000 + index)
    assert [r.id for r in await queue.claim(WORKER, [DEFAULT_QUEUE], limit=2)] == ["ex-0", "ex-1"]
    assert [r.id for r in await queue.claim(WORKER, [DEFAULT_QUEUE], limit=0)] == []
    assert [r.id for r in await queue.claim(WORKER, [DEFAULT_QUEUE], limit=9)] == ["ex-2", "ex-3", "ex-4"]


async def test_heartbeat_and_release_touch_only_the_workers_own_claims(db: Database) -> None:
    queue = SqliteQueue(db)
    await queue.enqueue(new("ex-1"), TASKS, at=1000)
    [claimed] = await queue.claim(WORKER, [DEFAULT_QUEUE])
    await queue.heartbeat(OTHER, ["ex-1"])  # not its claim: nothing moves
    assert (await ExecutionStore(db).get("ex-1")).heartbeat_at == claimed.heartbeat_at  # type: ignore[union-attr]
    await queue.release(OTHER, "ex-1")
    assert (await ExecutionStore(db).get("ex-1")).heartbeat_at is not None  # type: ignore[union-attr]
    await queue.release(WORKER, "ex-1")
    row = await ExecutionStore(db).get("ex-1")
    assert row is not None and row.heartbeat_at is None and row.worker_id == "w1"  # who ran it stays


async def test_a_queued_execution_is_cancelled_without_running(db: Database) -> None:
    queue = SqliteQueue(db)
    await queue.enqueue(new("ex-1"), TASKS, at=1000)
    await ExecutionStore(db).request_cancel("ex-1", "user", "not needed")
    assert await queue.cancel_queued("ex-1", "user", "not needed")
    row = await ExecutionStore(db).get("ex-1")
    assert row is not None
    assert (row.state, row.reason_code, row.message, row.cancelled_by, row.started_at) == (
        "CANCELLED", "EXECUTION_CANCELLED", "cancelled by user: not needed", "user", None,
    )
    assert {(t.task_id, t.state, t.reason_code) for t in await ExecutionStore(db).task_runs("ex-1")} == {
        ("a", "CANCELLED", "EXECUTION_CANCELLED"), ("b", "CANCELLED", "EXECUTION_CANCELLED"),
    }
    assert not await ExecutionStore(db).has_cancel_request("ex-1")  # handled
    events = [e.event_type for e in await AuditStore(db).list("ex-1")]
    assert events[-1] == "CANCELLED" and "CANCEL_REQUESTED" in events
    [line] = await LogStore(db).page_by_id(LogFilter("ex-1"))
    assert line.message == "Execution cancelled while queued (cancelled by user: not needed); 2 task(s) never started"
    assert await queue.claim(WORKER, [DEFAULT_QUEUE]) == []
    assert not await queue.cancel_queued("ex-1", "user", "again")  # no longer QUEUED


async def test_a_running_execution_is_not_cancelled_as_queued(db: Database) -> None:
    queue = SqliteQueue(db)
    await queue.enqueue(new("ex-1"), TASKS, at=1000)
    await queue.claim(WORKER, [DEFAULT_QUEUE])
    assert not await queue.cancel_queued("ex-1", "user", "late")
    assert (await ExecutionStore(db).get("ex-1")).state == "RUNNING"  # type: ignore[union-attr]


async def test_recovery_sees_pinned_queued_executions_but_not_shared_ones(db: Database) -> None:
    queue = SqliteQueue(db)
    await queue.enqueue(new("ex-shared"), TASKS, at=1000)
    await queue.enqueue(new("ex-pinned", "local:abc", pid=4242), TASKS, at=1000)
    assert await ExecutionStore(db).unfinished_on_host("host-a") == [("ex-pinned", 4242)]
