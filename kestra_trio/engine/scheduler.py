"""Scheduler: starts a task when all its `needs` succeeded; a CapacityLimiter bounds parallelism.

Bookkeeping is O(V + E): each finished task decrements a counter on its dependents. A failed
task's descendants never start and are recorded CANCELLED / UPSTREAM_FAILED in one
transaction; independent branches already running finish.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

import trio

from kestra_trio.engine.attempt import TaskWorker
from kestra_trio.engine.progress import ProgressEvent
from kestra_trio.model.dag import Dag
from kestra_trio.observability.records import LogEntry, LogLevel, now_ms
from kestra_trio.state.states import Reason, State
from kestra_trio.storage.db import is_storage_failure
from kestra_trio.storage.executions import StateChange

if TYPE_CHECKING:
    from kestra_trio.engine.runner import ExecutionRun, StopRequest, TaskResult


class Scheduler:
    def __init__(self, run: ExecutionRun) -> None:
        from kestra_trio.engine.runner import TaskResult

        self.run_ctx = run
        self.dag = Dag(run.workflow.tasks)
        self.remaining = {tid: len(needs) for tid, needs in self.dag.needs.items()}
        self.results: dict[str, TaskResult] = {
            spec.id: TaskResult(spec.id, State.WAITING if spec.needs else State.PENDING) for spec in run.workflow.tasks
        }
        self.outputs: dict[str, dict[str, Any]] = {}
        self.limiter = trio.CapacityLimiter(max(1, run.options.max_parallel))
        #: tasks holding a limiter slot (one waiting out a retry backoff gives its slot back)
        self.holding: set[str] = set()
        self._wake: trio.MemorySendChannel[tuple[str, bool] | None] | None = None
        self.started: set[str] = set()
        self.first_failure: TaskResult | None = None
        self.cancelled_before_start = 0
        self.worker = TaskWorker(run, self)

    def counts(self) -> dict[str, int]:
        return dict(Counter(result.state.value for result in self.results.values()))

    async def run(self) -> None:
        # (task_id, ok) when a task ends; None when a slot was given back (a retry backoff)
        done_send, done_receive = trio.open_memory_channel[tuple[str, bool] | None](math.inf)
        self._wake = done_send
        # Ready tasks wait here, not on the limiter: trio runs newly spawned tasks in a
        # shuffled order, so only admitting them one by one keeps workflow order among tasks
        # that became ready together (file order with --max-parallel 1, as users expect).
        ready: deque[str] = deque(self.dag.roots())
        async with trio.open_nursery() as nursery:
            running = 0
            while True:
                # a slot given back by a task in backoff goes first to a task waiting to
                # resume (the limiter hands it over), so available tokens mean nobody waits
                while ready and self.limiter.available_tokens:
                    task_id = ready.popleft()
                    self.limiter.acquire_on_behalf_of_nowait(task_id)
                    self.holding.add(task_id)
                    self.started.add(task_id)
                    nursery.start_soon(self._run_one, task_id, done_send)
                    running += 1
                if not running:
                    break
                message = await done_receive.receive()
                if message is None:
                    continue
                task_id, ok = message
                running -= 1
                if ok:
                    for dependent in self.dag.dependents[task_id]:
                        self.remaining[dependent] -= 1
                        if self.remaining[dependent] == 0 and self.results[dependent].state == State.WAITING:
                            ready.append(dependent)
                else:
                    await self._block_descendants(task_id)

    async def _run_one(self, task_id: str, done: trio.MemorySendChannel[tuple[str, bool] | None]) -> None:
        try:
            ok = await self.worker.run_task(task_id)
        finally:
            self.give_back_slot(task_id, wake=False)
        done.send_nowait((task_id, ok))

    def give_back_slot(self, task_id: str, *, wake: bool = True) -> None:
        """Free the task's slot while it does not run (a retry backoff), for other tasks."""
        if task_id in self.holding:
            self.holding.discard(task_id)
            self.limiter.release_on_behalf_of(task_id)
            if wake and self._wake is not None:
                self._wake.send_nowait(None)  # the scheduler may admit a ready task now

    async def take_slot_again(self, task_id: str) -> None:
        """After a backoff: wait for a slot (ahead of tasks that have not started yet)."""
        await self.limiter.acquire_on_behalf_of(task_id)
        self.holding.add(task_id)

    async def _block_descendants(self, failed_id: str) -> None:
        below = self.dag.descendants(failed_id)
        blocked = [
            tid
            for tid in self.dag.topological_order()
            if tid in below and tid not in self.started and not self.results[tid].state.is_terminal
        ]
        if not blocked:
            return
        message = f"upstream task {failed_id!r} failed"
        await self._cancel_many(blocked, Reason.UPSTREAM_FAILED, message)

    async def _cancel_many(self, task_ids: list[str], reason: Reason, message: str, line: str | None = None) -> None:
        run = self.run_ctx
        at = now_ms()
        for tid in task_ids:
            spec = run.workflow.task(tid)
            run.log_send.send_always(
                LogEntry(
                    run.execution_id, tid, LogLevel.WARN, "worker", line or f"Task {tid} not started: {message}",
                    {"reason_code": reason.value, "type": spec.type},
                )
            )
        await run.commit(
            *[
                StateChange(
                    run.execution_id, State.CANCELLED, reason.value, message, task_id=tid,
                    fields={"ended_at": at, "error": {"message": message, "type": "NotStarted", "reason_code": reason.value}},
                    at=at,
                )
                for tid in task_ids
            ]
        )
        for tid in task_ids:
            result = self.results[tid]
            result.state = State.CANCELLED
            result.reason_code = reason.value
            result.error = {"message": message, "reason_code": reason.value}
            self.started.add(tid)  # never to be started now
            self.cancelled_before_start += 1
            run.progress(
                ProgressEvent(run.execution_id, tid, State.CANCELLED, reason.value, message, task_type=run.workflow.task(tid).type)
            )

    async def cancel_unstarted(self, stop: StopRequest | None, internal_error: BaseException | None = None) -> None:
        """After the scheduler ends: every task that never ran is CANCELLED, with the cause."""
        pending = [tid for tid, result in self.results.items() if not result.state.is_terminal]
        if not pending:
            return
        line = None
        if stop is not None:
            reason = Reason.TIMEOUT if stop.reason == Reason.TIMEOUT else Reason.EXECUTION_CANCELLED
            message = stop.message if stop.reason == Reason.TIMEOUT else f"execution cancelled by {stop.by}: {stop.message}"
            # the same line a running task gets, so every task hit by the stop says so alike
            what = "timeout" if stop.reason == Reason.TIMEOUT else "cancellation"
            cause = stop.message if stop.reason == Reason.TIMEOUT else f"cancelled by {stop.by}: {stop.message}"
            line = f"Task cancelled due to execution {what} ({cause}); it had not started"
        else:  # only reachable after an internal error (or a broken database)
            storage = internal_error is not None and is_storage_failure(internal_error)
            reason = Reason.DATABASE_ERROR if storage else Reason.INTERNAL_ERROR
            message = "the scheduler stopped before this task could run"
        await self._cancel_many(pending, reason, message, line)
