"""Worker: claim → run → release, with the cancel registry and a bound on claimed executions.

One worker per service. It claims from its queues when poked (an enqueue in this process)
or every `WORKER_POLL_SECONDS` (an enqueue by another process; LISTEN/NOTIFY on PostgreSQL),
runs each claimed execution in its own nursery, keeps `execution id → ExecutionRun` (the
handle `stop` goes through: signals, `execution cancel`, shutdown) and heartbeats what it runs.

Executions in the worker's private queue (pinned to this process, e.g. `kestra-trio run`)
are always claimed, even while stopping: their process is the only one that will ever run
them, so a stop arriving early still ends them with a recorded CANCELLED, never a stray row.
Shared queues are claimed only while the worker runs fewer than `max_executions`: the rest
stays visibly QUEUED.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from kestra_trio.engine.context import EngineServices, ExecutionResult, StopRequest
from kestra_trio.engine.runner import ExecutionRun, run_claimed
from kestra_trio.model.workflow import Workflow
from kestra_trio.storage.ports import AuditSink, Queue, WorkerIdentity
from kestra_trio.storage.rows import ExecutionRow

#: how often a worker looks for executions enqueued by other processes
WORKER_POLL_SECONDS = 0.5
#: how often a worker tells the database it still runs its executions
HEARTBEAT_SECONDS = 10.0


@dataclass
class PreparedRun:
    """What a claimed execution runs: the parsed workflow, inputs, secrets, who watches it."""

    workflow: Workflow
    inputs: dict[str, Any]
    secrets: dict[str, str]
    on_progress: Callable[[Any], None] | None = None
    #: `{{ trigger.* }}`: handed over in memory when pinned, else read back (masked) from the row
    trigger: dict[str, Any] | None = None


class _Waiter:
    __slots__ = ("done", "result")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: ExecutionResult | None = None


class Worker:
    def __init__(
        self,
        engine: EngineServices,
        queue: Queue,
        audit_sink: AuditSink,
        identity: WorkerIdentity,
        *,
        queues: Sequence[str],
        prepare: Callable[[ExecutionRow], Any],
        max_executions: int | None = None,
        poll_seconds: float = WORKER_POLL_SECONDS,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.audit_sink = audit_sink
        self.identity = identity
        self.shared_queues = tuple(q for q in queues if q != identity.private_queue)
        self.prepare = prepare  # async (claimed row) -> PreparedRun
        self.max_executions = max_executions or engine.options.max_parallel
        self.poll_seconds = poll_seconds if self.shared_queues else math.inf
        #: the cancel registry: execution id -> its running handle (None while it starts)
        self.running: dict[str, ExecutionRun | None] = {}
        #: set when the service stops: shared queues are no longer claimed, new runs stop at once
        self.stop_request: StopRequest | None = None
        #: a server's drain: shared queues are no longer claimed, what runs goes on
        self.draining = False
        self._waiters: dict[str, _Waiter] = {}
        self._wake = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self._nursery: trio.Nursery | None = None

    # --------------------------------------------------------------- the service's API
    def poke(self) -> None:
        """Something was enqueued: look now instead of at the next poll."""
        self._wake.set()

    def expect(self, execution_id: str) -> None:
        """Someone will `wait` for this execution: keep its result (call before it can finish)."""
        self._waiters.setdefault(execution_id, _Waiter())

    async def wait(self, execution_id: str) -> ExecutionResult:
        """The result of an `expect`ed execution once this worker has run it."""
        waiter = self._waiters[execution_id]
        await waiter.done.wait()
        self._waiters.pop(execution_id, None)
        assert waiter.result is not None
        return waiter.result

    async def stop_all(self, request: StopRequest) -> None:
        """Stop every running execution (and every one claimed from now on) for `request`."""
        if self.stop_request is None:
            self.stop_request = request
        for run in list(self.running.values()):
            if run is not None:  # (one still starting stops as it registers)
                run.stop(request)
        self.poke()

    def stop_claiming(self) -> None:
        """Claim nothing more from the shared queues (a server's drain); running executions go on
        and what is still QUEUED waits for the next worker."""
        self.draining = True

    async def wait_idle(self) -> None:
        await self._idle.wait()

    # --------------------------------------------------------------- the loop
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._heartbeat)
            task_status.started()
            while True:
                await self._claim_available(nursery)
                with trio.move_on_after(self.poll_seconds):
                    await self._wake.wait()
                self._wake = trio.Event()

    async def _claim_available(self, nursery: trio.Nursery) -> None:
        on_error = self.engine.options.on_error
        try:
            claimed = await self.queue.claim(self.identity, [self.identity.private_queue], limit=100)
            room = self.max_executions - len(self.running) - len(claimed)
            if self.shared_queues and self.stop_request is None and not self.draining and room > 0:
                claimed += await self.queue.claim(self.identity, self.shared_queues, limit=room)
        except Exception as exc:  # a locked or broken database must not kill the worker
            on_error(f"cannot claim queued executions ({exc})")
            return
        for row in claimed:
            self._idle = trio.Event() if self._idle.is_set() else self._idle
            self.running[row.id] = None  # claimed, not started yet
            nursery.start_soon(self._execute, row)

    async def _execute(self, row: ExecutionRow) -> None:
        """Run one claimed execution; its waiter (if any) gets the result; the claim is released."""
        waiter = self._waiters.get(row.id) or _Waiter()
        try:
            try:
                prepared: PreparedRun = await self.prepare(row)
            except Exception as exc:  # the workflow revision is gone or no longer loads
                waiter.result = await _fail_unrunnable(self.engine, self.audit_sink, row, str(exc))
                return
            waiter.result = await run_claimed(
                self.engine, row.id, prepared.workflow, prepared.inputs,
                audit_sink=self.audit_sink, secrets=prepared.secrets,
                started_at=row.started_at or row.claimed_at or 0, workflow_revision=row.workflow_revision,
                on_progress=prepared.on_progress, trigger=prepared.trigger or row.trigger,
                task_status=_Registration(self, row.id),
            )
        finally:
            waiter.done.set()
            self.running.pop(row.id, None)
            with trio.CancelScope(shield=True):
                try:
                    await self.queue.release(self.identity, row.id)
                except Exception as exc:
                    self.engine.options.on_error(f"cannot release execution {row.id} ({exc})")
            if not self.running:
                self._idle.set()
            self.poke()  # room for the next queued execution

    async def _heartbeat(self) -> None:
        while True:
            await trio.sleep(HEARTBEAT_SECONDS)
            if self.running:
                try:
                    await self.queue.heartbeat(self.identity, list(self.running))
                except Exception as exc:
                    self.engine.options.on_error(f"cannot record the worker heartbeat ({exc})")


class _Registration:
    """`task_status` for `run_claimed`: files the run in the cancel registry as it starts, and
    applies a stop that came first (a Ctrl+C while the execution was being enqueued)."""

    def __init__(self, worker: Worker, execution_id: str) -> None:
        self.worker = worker
        self.execution_id = execution_id

    def started(self, run: ExecutionRun) -> None:
        self.worker.running[self.execution_id] = run
        if self.worker.stop_request is not None:
            run.stop(self.worker.stop_request)


async def _fail_unrunnable(engine: EngineServices, audit_sink: AuditSink, row: ExecutionRow, problem: str) -> ExecutionResult:
    """A claimed execution that cannot start ends FAILED [INTERNAL_ERROR], its tasks never started."""
    from kestra_trio.observability.records import AuditEvent, AuditEventType, now_ms
    from kestra_trio.state.states import Reason, State
    from kestra_trio.storage.executions import StateChange

    at = now_ms()
    message = f"the execution could not start: {problem}"
    error = {"message": message, "type": "NotStarted", "reason_code": Reason.INTERNAL_ERROR.value}
    changes = [
        StateChange(row.id, State.CANCELLED, Reason.INTERNAL_ERROR.value, message, task_id=task.task_id,
                    fields={"ended_at": at, "error": error}, at=at)
        for task in await engine.store.task_runs(row.id)
        if task.state not in ("SUCCESS", "FAILED", "CANCELLED")
    ]
    changes.append(StateChange(
        row.id, State.FAILED, Reason.INTERNAL_ERROR.value, message, fields={"ended_at": at},
        audit=[AuditEvent(row.id, AuditEventType.FAILED, {
            "error_message": message, "failed_task_id": None, "reason_code": Reason.INTERNAL_ERROR.value,
        }, at)],
        at=at,
    ))
    await engine.store.apply(*changes)
    engine.options.on_error(f"execution {row.id}: {message}")
    return ExecutionResult(
        execution_id=row.id, workflow_id=row.workflow_id, state=State.FAILED, reason_code=Reason.INTERNAL_ERROR.value,
        message=message, duration_ms=at - (row.started_at or at), workflow_revision=row.workflow_revision,
    )
