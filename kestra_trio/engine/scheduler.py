"""Scheduler: starts a task when all its `needs` are done; the service's slots bound parallelism.

Bookkeeping is O(V + E): each finished task decrements a counter on its dependents. A task
whose needs are done runs, is skipped or is blocked (`Dag.verdict`): a failed task's
descendants never start and are recorded CANCELLED / UPSTREAM_FAILED in one transaction;
a SKIPPED need (run_if false) or an allowed failure counts as done, unless the dependent
reads its outputs (then it is SKIPPED too). Independent branches already running finish.

Ready tasks are admitted one by one, in workflow order, by one admitter task that waits
for a slot of the process-wide `TaskSlots` (first come, first served): `--max-parallel` counts running
tasks across every execution of the process, and the executions share it fairly.

One Scheduler runs one list of tasks: `tasks:`, then (see `runner`) `errors:` and `finally:`,
each its own graph, seeing the outputs of the lists before it. A `for_each` task runs its
iterations (`each[0]`, `each[1]` ...) as task runs of their own (`_for_each`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from kestra_trio.engine.attempt import TaskSlot, TaskWorker
from kestra_trio.engine.context import RunContext, StopRequest, TaskResult
from kestra_trio.engine.progress import ProgressEvent
from kestra_trio.model.control import condition_holds, for_each_items, iteration_id
from kestra_trio.model.dag import Dag, Upstream, VerdictKind, classify_upstream
from kestra_trio.model.templates import TemplateError, render
from kestra_trio.model.workflow import SUBFLOW_TYPE, TaskSpec
from kestra_trio.observability.records import LogEntry, LogLevel, now_ms
from kestra_trio.plugin_runtime.runtime import Outcome
from kestra_trio.state.states import Reason, State
from kestra_trio.storage.db import is_storage_failure
from kestra_trio.storage.executions import NewTaskRun, StateChange


class Scheduler:
    def __init__(
        self,
        run: RunContext,
        tasks: Sequence[TaskSpec] | None = None,
        *,
        phase: str = "tasks",
        outputs: Mapping[str, Any] | None = None,
        upstream: Mapping[str, Upstream] | None = None,
    ) -> None:
        self.run_ctx = run
        self.phase = phase
        self.specs: dict[str, TaskSpec] = {spec.id: spec for spec in (run.workflow.tasks if tasks is None else tasks)}
        self.dag = Dag(list(self.specs.values()))
        self.remaining = {tid: len(needs) for tid, needs in self.dag.needs.items()}
        self.results: dict[str, TaskResult] = {
            spec.id: TaskResult(spec.id, State.WAITING if spec.needs else State.PENDING) for spec in self.specs.values()
        }
        #: outputs of the tasks that succeeded (a for_each task: the list of its iterations'),
        #: for the templates of the tasks below them; errors:/finally: start with those of tasks:
        self.outputs: dict[str, Any] = dict(outputs or {})
        #: how each finished task counts for the tasks after it (`Dag.verdict`)
        self.upstream: dict[str, Upstream] = dict(upstream or {})
        #: for_each iterations, by their task run id (`each[0]`)
        self.iterations: dict[str, TaskResult] = {}
        self.slots = run.services.slots
        self.started: set[str] = set()
        self.first_failure: TaskResult | None = None
        #: tasks that failed with `allow_failure: true` (the execution goes on)
        self.allowed_failures: list[str] = []
        self.cancelled_before_start = 0
        #: a restarted execution: attempts its task runs already had (new ones number after them)
        self.attempts_before: dict[str, int] = {}
        self.worker = TaskWorker(run)

    def reuse(self, rows: Sequence[Any]) -> None:
        """A restarted execution (`execution restart`): its task runs that stayed finished count
        as done with their stored outputs; the ones reopened run. `rows`: its TaskRunRows."""
        for row in rows:
            self.attempts_before[row.task_id] = row.attempt_count or 0
            result = self.results.get(row.task_id)
            state = State(row.state)
            if result is None or row.parent_task_id is not None or not state.is_terminal:
                continue
            spec = self.specs[row.task_id]
            result.state, result.reason_code, result.outputs, result.error = state, row.reason_code, row.outputs, row.error
            result.attempts, result.duration_ms = row.attempt_count or 0, row.duration_ms
            self.started.add(row.task_id)
            counted = classify_upstream(state.value, allow_failure=spec.allow_failure) or Upstream.BLOCKING
            self.upstream[row.task_id] = counted
            if state == State.SUCCESS:
                self.outputs[row.task_id] = row.outputs if row.outputs is not None else {}
            elif state == State.FAILED and spec.allow_failure:
                self.allowed_failures.append(row.task_id)
            elif counted is Upstream.BLOCKING and self.first_failure is None:
                self.first_failure = result
            for dependent in self.dag.dependents[row.task_id]:
                self.remaining[dependent] -= 1

    def counts(self) -> dict[str, int]:
        return dict(Counter(result.state.value for result in self.results.values()))

    async def open_rows(self) -> None:
        """errors:/finally: tasks get their task runs when their list starts (tasks: have them from enqueue)."""
        run = self.run_ctx
        offset = len(run.workflow.all_tasks())
        await run.store.open_task_runs(
            run.execution_id,
            [
                NewTaskRun(
                    task_id=spec.id, position=offset + index, type=spec.type, needs=spec.needs,
                    max_attempts=spec.retry.max_attempts, timeout_ms=_ms(run.task_timeout(spec)), phase=self.phase,
                )
                for index, spec in enumerate(self.specs.values())
            ],
        )

    async def run(self) -> None:
        done_send, done_receive = trio.open_memory_channel[str](math.inf)
        # Ready tasks wait in this channel, not on the slots: trio runs newly spawned tasks
        # in a shuffled order, so only admitting them one by one keeps workflow order among
        # tasks that became ready together (file order with --max-parallel 1, as users expect).
        ready_send, ready_receive = trio.open_memory_channel[str](math.inf)
        outstanding = 0  # ready, running, or skipped and not yet counted

        async def ready(task_id: str) -> None:
            verdict = self.dag.verdict(task_id, self.upstream)
            if verdict.kind is VerdictKind.RUN:
                ready_send.send_nowait(task_id)
            elif verdict.kind is VerdictKind.SKIP:
                await self._skip(self.results[task_id], Reason.OUTPUTS_UNAVAILABLE, verdict.message)
                done_send.send_nowait(task_id)
            else:
                await self._cancel_many([task_id], Reason.UPSTREAM_FAILED, verdict.message)
                done_send.send_nowait(task_id)

        for task_id in self.dag.order:  # the roots (of what is left to run, after a restart)
            if self.remaining[task_id] == 0 and task_id not in self.started:
                outstanding += 1
                await ready(task_id)
        if not outstanding:
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._admit, ready_receive, done_send, nursery)
            while outstanding:
                task_id = await done_receive.receive()
                outstanding -= 1
                result = self.results[task_id]
                counted = classify_upstream(result.state.value, allow_failure=self.specs[task_id].allow_failure)
                self.upstream[task_id] = counted or Upstream.BLOCKING
                if counted is Upstream.BLOCKING or counted is None:
                    await self._block_descendants(task_id)
                    continue
                for dependent in self.dag.dependents[task_id]:
                    self.remaining[dependent] -= 1
                    if self.remaining[dependent] == 0 and self.results[dependent].state == State.WAITING:
                        outstanding += 1
                        await ready(dependent)
            nursery.cancel_scope.cancel()  # the admitter waits for tasks that will not come

    async def _admit(
        self,
        ready: trio.MemoryReceiveChannel[str],
        done: trio.MemorySendChannel[str],
        nursery: trio.Nursery,
    ) -> None:
        async for task_id in ready:
            slot = TaskSlot(self.slots)
            await slot.take()
            self.started.add(task_id)
            nursery.start_soon(self._run_one, task_id, slot, done)

    async def _run_one(self, task_id: str, slot: TaskSlot, done: trio.MemorySendChannel[str]) -> None:
        spec = self.specs[task_id]
        result = self.results[task_id]
        try:
            outputs: Any = None
            if spec.run_if is not None and not await self._condition_holds(spec, result):
                pass  # SKIPPED, or FAILED for a broken run_if: recorded
            elif spec.type == SUBFLOW_TYPE:
                slot.give_back()  # waiting for the child is not running: its tasks need the slots
                result, outputs = await self.worker.run_subflow(
                    result, self.outputs, first_attempt=self.attempts_before.get(task_id, 0)
                )
            elif spec.for_each is not None:
                slot.give_back()  # each iteration takes a slot of its own
                outputs = await self._for_each(spec, result)
            else:
                result, outputs = await self.worker.run_task(
                    result, self.outputs, slot, first_attempt=self.attempts_before.get(task_id, 0)
                )
        finally:
            slot.give_back()
        if outputs is not None:
            self.outputs[task_id] = outputs
        elif result.state == State.FAILED and spec.allow_failure:
            self.allowed_failures.append(task_id)
        elif result.state != State.SKIPPED and self.first_failure is None:
            self.first_failure = result
        done.send_nowait(task_id)

    async def _condition_holds(self, spec: TaskSpec, result: TaskResult) -> bool:
        """Render `run_if`: false → SKIPPED [RUN_IF_FALSE]; a broken one fails the task."""
        run = self.run_ctx
        try:
            holds = condition_holds(render(spec.run_if, run.template_context(spec.id, 1, self.outputs)))
        except TemplateError as exc:
            await self.worker.fail_unstarted(result, Outcome.failure(Reason.TEMPLATE_ERROR, f"run_if: {exc}", type="TemplateError"))
            return False
        if not holds:
            await self._skip(result, Reason.RUN_IF_FALSE, "its run_if is false")
        return holds

    async def _skip(self, result: TaskResult, reason: Reason, why: str) -> None:
        run = self.run_ctx
        at = now_ms()
        spec = self.specs[result.task_id]
        await run.log(LogLevel.INFO, "worker", f"Task {result.task_id} skipped: {why}", task_id=result.task_id,
                      reason_code=reason.value, type=spec.type)
        await run.commit(StateChange(run.execution_id, State.SKIPPED, reason.value, why, task_id=result.task_id,
                                    fields={"ended_at": at}, at=at))
        result.state, result.reason_code = State.SKIPPED, reason.value
        self.started.add(result.task_id)
        run.progress(ProgressEvent(run.execution_id, result.task_id, State.SKIPPED, reason.value, why, task_type=spec.type))

    # -------------------------------------------------------------------- for_each
    async def _for_each(self, spec: TaskSpec, result: TaskResult) -> list[Any] | None:
        """One task run per item (`each[0]` ...), at most `concurrency` at once, each in a
        slot of its own; the task's outputs are the iterations' outputs in order."""
        run = self.run_ctx
        assert spec.for_each is not None
        items_template = spec.for_each.items
        try:
            value = list(items_template) if isinstance(items_template, tuple) else items_template
            items = for_each_items(
                render(value, run.template_context(spec.id, 1, self.outputs)), run.services.for_each_max_items
            )
        except TemplateError as exc:
            await self.worker.fail_unstarted(result, Outcome.failure(Reason.TEMPLATE_ERROR, f"for_each: {exc}", type="TemplateError"))
            return None
        started = now_ms()
        concurrency = spec.for_each.concurrency
        await run.apply(StateChange(run.execution_id, State.RUNNING, Reason.STARTED.value, task_id=spec.id,
                                    fields={"started_at": started}, at=started))
        result.state = State.RUNNING
        await run.log(LogLevel.INFO, "worker",
                      f"Task {spec.id} started: {spec.type} for each of {len(items):,} item(s), {concurrency} at a time",
                      task_id=spec.id, type=spec.type, items=len(items), concurrency=concurrency)
        run.progress(ProgressEvent(run.execution_id, spec.id, State.RUNNING, "STARTED", None, 0, 1, spec.type))
        position = list(self.specs).index(spec.id) + (len(run.workflow.all_tasks()) if self.phase != "tasks" else 0)
        ids = [iteration_id(spec.id, index) for index in range(len(items))]
        if items:
            await run.store.open_task_runs(run.execution_id, [
                NewTaskRun(task_id=tid, position=position, type=spec.type, needs=(), max_attempts=spec.retry.max_attempts,
                           timeout_ms=_ms(run.task_timeout(spec)), phase=self.phase, parent_task_id=spec.id,
                           iteration=index, item=run.masker.mask_value(item))
                for index, (tid, item) in enumerate(zip(ids, items))
            ])
        iterations = {tid: TaskResult(tid, State.PENDING) for tid in ids}
        self.iterations.update(iterations)
        outputs: list[Any] = [None] * len(items)
        room = trio.Semaphore(concurrency)
        begun: set[str] = set()

        async def one(index: int, item: Any, slot: TaskSlot) -> None:
            tid = ids[index]
            try:
                _, out = await self.worker.run_task(
                    iterations[tid], self.outputs, slot, spec=spec, item=item, item_index=index,
                    first_attempt=self.attempts_before.get(tid, 0),
                )
                outputs[index] = out
            finally:
                slot.give_back()
                room.release()

        try:
            async with trio.open_nursery() as nursery:
                for index, item in enumerate(items):
                    await room.acquire()
                    slot = TaskSlot(self.slots)
                    try:
                        await slot.take()
                    except BaseException:
                        room.release()
                        raise
                    begun.add(ids[index])
                    nursery.start_soon(one, index, item, slot)
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await self._cancel_many([tid for tid in ids if tid not in begun], *self._stop_cause(), count=False)
                await self._end_for_each(spec, result, iterations, started, stopped=True)
            raise
        return await self._end_for_each(spec, result, iterations, started, outputs=outputs)

    async def _end_for_each(
        self, spec: TaskSpec, result: TaskResult, iterations: dict[str, TaskResult], started: int, *,
        outputs: list[Any] | None = None, stopped: bool = False,
    ) -> list[Any] | None:
        run = self.run_ctx
        ended = now_ms()
        failed = [r for r in iterations.values() if r.state != State.SUCCESS]
        duration = ended - started
        if stopped:
            reason, message = self._stop_cause()
            state, reason_code = State.CANCELLED, reason.value
            error: dict[str, Any] | None = {"message": message, "type": "Cancelled", "reason_code": reason_code}
        elif failed:
            first = failed[0]
            first_message = (first.error or {}).get("message", first.state.value.lower())
            message = f"{len(failed):,} of {len(iterations):,} iterations failed; first: {first.task_id}: {first_message}"
            state, reason_code = State.FAILED, Reason.PLUGIN_FAILED.value
            error = {"message": message, "type": "IterationsFailed", "reason_code": reason_code,
                     "failed_iterations": [r.task_id for r in failed[:100]]}
            if spec.allow_failure:
                error["failure_allowed"] = True
        else:
            state, reason_code, message, error = State.SUCCESS, Reason.COMPLETED.value, None, None
        masked = run.masker.mask_value(outputs) if state == State.SUCCESS else None
        fields: dict[str, Any] = {"ended_at": ended, "duration_ms": duration}
        if masked is not None:
            fields["outputs"] = masked
        if error is not None:
            fields["error"] = run.masker.mask_value(error)
        level = LogLevel.INFO if state == State.SUCCESS else LogLevel.ERROR
        await run.log(level, "worker",
                      f"Task {spec.id} {'succeeded' if state == State.SUCCESS else state.value.lower()}: "
                      f"{len(iterations) - len(failed):,} of {len(iterations):,} iterations succeeded"
                      + (f" ({message})" if message and not stopped else ""),
                      task_id=spec.id, status=state.value, iterations=len(iterations), failed=len(failed))
        await run.commit(StateChange(run.execution_id, state, reason_code, message, task_id=spec.id, fields=fields, at=ended))
        result.state, result.reason_code, result.outputs, result.error = state, reason_code, masked, error
        result.duration_ms = duration
        run.progress(ProgressEvent(run.execution_id, spec.id, state, reason_code, message, task_type=spec.type))
        return outputs if state == State.SUCCESS else None

    def _stop_cause(self) -> tuple[Reason, str]:
        stop = self.run_ctx.stop_request
        if stop is not None and stop.reason == Reason.TIMEOUT:
            return Reason.TIMEOUT, stop.message
        if stop is not None:
            return Reason.EXECUTION_CANCELLED, f"execution cancelled by {stop.by}: {stop.message}"
        return Reason.EXECUTION_CANCELLED, "cancelled"

    # -------------------------------------------------------------------- blocking
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

    def _type_of(self, task_id: str) -> str:
        spec = self.specs.get(task_id)
        return spec.type if spec is not None else self.specs[task_id.rsplit("[", 1)[0]].type

    async def _cancel_many(
        self, task_ids: list[str], reason: Reason, message: str, line: str | None = None, *, count: bool = True
    ) -> None:
        if not task_ids:
            return
        run = self.run_ctx
        at = now_ms()
        for tid in task_ids:
            run.log_send.send_always(
                LogEntry(
                    run.execution_id, tid, LogLevel.WARN, "worker", line or f"Task {tid} not started: {message}",
                    {"reason_code": reason.value, "type": self._type_of(tid)},
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
            result = self.results.get(tid) or self.iterations[tid]
            result.state = State.CANCELLED
            result.reason_code = reason.value
            result.error = {"message": message, "reason_code": reason.value}
            self.started.add(tid)  # never to be started now
            if count:
                self.cancelled_before_start += 1
            run.progress(ProgressEvent(run.execution_id, tid, State.CANCELLED, reason.value, message, task_type=self._type_of(tid)))

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


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None or math.isinf(seconds) else int(seconds * 1000)
