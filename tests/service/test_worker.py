"""Worker logic against an in-memory Queue (autojump clock): claims on a poke or a poll, a bound
on shared executions, no shared claims once stopping, heartbeats, release after each run."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from kestra_trio.engine.context import EngineOptions, ExecutionResult, StopRequest
from kestra_trio.service import worker as worker_module
from kestra_trio.service.worker import HEARTBEAT_SECONDS, WORKER_POLL_SECONDS, PreparedRun, Worker
from kestra_trio.state.states import Reason, State
from kestra_trio.storage.executions import DEFAULT_QUEUE
from kestra_trio.storage.ports import WorkerIdentity
from kestra_trio.storage.rows import ExecutionRow

IDENTITY = WorkerIdentity("w1", 1, "host")


def row(execution_id: str, queue: str) -> ExecutionRow:
    return ExecutionRow(execution_id, "wf", "default", "RUNNING", "STARTED", None, "manual", {}, None,
                        0, 0, None, 0, None, 0, 1, None, None, 1, "host", queue, "w1", 0, 0, None)


@dataclass
class MemoryQueue:
    queued: dict[str, list[str]] = field(default_factory=dict)  # queue -> ids, oldest first
    heartbeats: list[tuple[float, list[str]]] = field(default_factory=list)
    released: list[str] = field(default_factory=list)

    def put(self, queue: str, *ids: str) -> None:
        self.queued.setdefault(queue, []).extend(ids)

    async def claim(self, worker, queues, *, limit=1):
        taken = []
        for queue in queues:
            while self.queued.get(queue) and len(taken) < limit:
                taken.append(row(self.queued[queue].pop(0), queue))
        return taken

    async def heartbeat(self, worker, ids):
        self.heartbeats.append((trio.current_time(), sorted(ids)))

    async def release(self, worker, execution_id):
        self.released.append(execution_id)


class FakeRuns:
    """Stands in for run_claimed: each execution runs until the test finishes it."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finish: dict[str, trio.Event] = {}

    async def __call__(self, engine, execution_id, workflow, inputs, *, task_status, **kwargs):
        self.started.append(execution_id)
        self.finish[execution_id] = trio.Event()
        task_status.started(FakeRun())
        await self.finish[execution_id].wait()
        return ExecutionResult(execution_id, "wf", State.SUCCESS, "COMPLETED", None, 0)


class FakeRun:
    def __init__(self) -> None:
        self.stops: list[StopRequest] = []

    def stop(self, request: StopRequest) -> None:  # (ExecutionRun.stop never blocks)
        self.stops.append(request)


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> FakeRuns:
    fake = FakeRuns()
    monkeypatch.setattr(worker_module, "run_claimed", fake)
    return fake


@dataclass
class FakeEngine:
    options: EngineOptions = field(default_factory=lambda: EngineOptions(max_parallel=2))


async def prepare(row: ExecutionRow) -> PreparedRun:
    return PreparedRun(workflow=None, inputs={}, secrets={})  # type: ignore[arg-type]


def make_worker(queue: MemoryQueue) -> Worker:
    return Worker(FakeEngine(), queue, None, IDENTITY, queues=[IDENTITY.private_queue, DEFAULT_QUEUE],  # type: ignore[arg-type]
                  prepare=prepare)


async def test_claims_pinned_work_at_once_and_shared_work_up_to_the_bound(
    runs: FakeRuns, autojump_clock: trio.testing.MockClock
) -> None:
    queue = MemoryQueue()
    worker = make_worker(queue)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        queue.put(IDENTITY.private_queue, "pinned")
        worker.expect("pinned")
        worker.poke()
        await trio.testing.wait_all_tasks_blocked()
        assert runs.started == ["pinned"]
        queue.put(DEFAULT_QUEUE, "s1", "s2", "s3")
        await trio.sleep(WORKER_POLL_SECONDS * 2)  # found by the next poll: no poke from another process
        assert runs.started == ["pinned", "s1"]  # two running, the bound (max_parallel) is 2
        runs.finish["pinned"].set()
        assert (await worker.wait("pinned")).state == State.SUCCESS
        await trio.testing.wait_all_tasks_blocked()
        assert runs.started == ["pinned", "s1", "s2"]  # a finished run makes room at once
        assert queue.released == ["pinned"]
        await trio.sleep(HEARTBEAT_SECONDS)
        assert queue.heartbeats and queue.heartbeats[-1][1] == ["s1", "s2"]
        nursery.cancel_scope.cancel()


async def test_once_stopping_only_pinned_work_is_claimed_and_it_stops_at_once(
    runs: FakeRuns, autojump_clock: trio.testing.MockClock
) -> None:
    queue = MemoryQueue()
    worker = make_worker(queue)
    request = StopRequest(Reason.EXECUTION_CANCELLED, "user", "received SIGINT", signal=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await worker.stop_all(request)
        queue.put(DEFAULT_QUEUE, "shared")
        queue.put(IDENTITY.private_queue, "pinned")
        worker.poke()
        await trio.sleep(WORKER_POLL_SECONDS * 3)
        assert runs.started == ["pinned"] and queue.queued[DEFAULT_QUEUE] == ["shared"]
        [run] = [r for r in worker.running.values() if r is not None]
        assert run.stops == [request]  # a stop that came first applies as the run registers
        runs.finish["pinned"].set()
        await worker.wait_idle()
        nursery.cancel_scope.cancel()
