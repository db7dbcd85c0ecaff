"""Scheduler: starts a task when all its `needs` succeeded; the service's slots bound parallelism.

Bookkeeping is O(V + E): each finished task decrements a counter on its dependents. A failed
task's descendants never start and are recorded CANCELLED / UPSTREAM_FAILED in one
transaction; independent branches already running finish.

Ready tasks are admitted one by one, in workflow order, by one admitter task that waits
for a slot of the process-wide `TaskSlots` (first come, first served): `--max-parallel` counts running
tasks across every execution of the process, and the executions share it fairly.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import trio

from kestra_trio.engine.attempt import TaskSlot, TaskWorker
from kestra_trio.engine.context import RunContext, StopRequest, TaskResult
from kestra_trio.engine.progress import ProgressEvent
from kestra_trio.model.dag import Dag
from kestra_trio.observability.records import LogEntry, LogLevel, now_ms
from kestra_trio.state.states import Reason, State
from kestra_trio.storage.db import is_storage_failure
from kestra_trio.storage.executions import StateChange


class Scheduler:
    def __init__(self, run: RunContext) -> None:
        self.run_ctx = run
        self.dag = Dag(run.workflow.tasks)
        self.remaining = {tid: len(needs) for tid, needs in self.dag.needs.items()}
        self.results: dict[str, TaskResult] = {
            spec.id: TaskResult(spec.id, State.WAITING if spec.needs else State.PENDING) for spec in run.workflow.tasks
        }
        #: outputs of the tasks that succeeded, for the templates of the tasks below them
        self.outputs: dict[str, dict[str, Any]] = {}
        self.slots = run.services.slots
        self.started: set[str] = set()
        self.first_failure: TaskResult | None = None
        self.cancelled_before_start = 0
        self.worker = TaskWorker(run)

    def counts(self) -> dict[str, int]:
        return dict(Counter(result.state.value for result in self.results.values()))

    async def run(self) -> None:
        done_send, done_receive = trio.open_memory_channel[tuple[str, bool]](math.inf)
        # Ready tasks wait in this channel, not on the slots: trio runs newly spawned tasks
        # in a shuffled order, so only admitting them one by one keeps workflow order among
        # tasks that became ready together (file order with --max-parallel 1, as users expect).
        ready_send, ready_receive = trio.open_memory_channel[str](math.inf)
        outstanding = 0  # ready or running
        for task_id in self.dag.roots():
            ready_send.send_nowait(task_id)
            outstanding += 1
        if not outstanding:
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._admit, ready_receive, done_send, nursery)
            while outstanding:
                task_id, ok = await done_receive.receive()
                outstanding -= 1
                if ok:
                    for dependent in self.dag.dependents[task_id]:
                        self.remaining[dependent] -= 1
                        if self.remaining[dependent] == 0 and self.results[dependent].state == State.WAITING:
                            ready_send.send_nowait(dependent)
                            outstanding += 1
                else:
                    await self._block_descendants(task_id)
            nursery.cancel_scope.cancel()  # the admitter waits for tasks that will not come

    async def _admit(
        self,
        ready: trio.MemoryReceiveChannel[str],
        done: trio.MemorySendChannel[tuple[str, bool]],
        nursery: trio.Nursery,
    ) -> None:
        async for task_id in ready:
            slot = TaskSlot(self.slots)
            await slot.take()
            self.started.add(task_id)
            nursery.start_soon(self._run_one, task_id, slot, done)

    async def _run_one(self, task_id: str, slot: TaskSlot, done: trio.MemorySendChannel[tuple[str, bool]]) -> None:
        try:
            result, outputs = await self.worker.run_task(self.results[task_id], self.outputs, slot)
        finally:
            slot.give_back()
        if outputs is not None:
            self.outputs[task_id] = outputs
        elif self.first_failure is None:
            self.first_failure = result
        done.send_nowait((task_id, result.state == State.SUCCESS))

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
