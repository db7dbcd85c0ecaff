"""run_claimed(): run ONE claimed execution inside the service's nursery.

The service (`service.app`) opens the parts every execution shares once per process —
database, log collector, watchdog, slots, signal handling — and its worker claims an
execution (QUEUED → RUNNING) and calls this:

    service root nursery
    ├─ LogCollector.run, GroupReaper, signals, cancel watcher, retention   (once per process)
    └─ worker → run_claimed
        └─ execution nursery
            ├─ execution timeout     (→ stop with TIMEOUT)
            └─ execution scope → Scheduler → task scope → attempt scope → runtime → plugin process

Stopping = recording why, then cancelling the execution scope (`ExecutionRun.stop`, called
by the service for a signal or an `execution cancel` request); each task records its own
CANCELLED state (shielded) on the way out. ExceptionGroups are unwrapped here and nowhere else.

While the database refuses writes every writer waits for it (`WriteRetry`): the execution
goes on once it takes writes again. A stop of the process (a signal, the service closing)
gives that wait a deadline (kill grace + close grace); past it, what still cannot be
written is counted (`log_entries_lost`), state changes are kept for the final transaction,
and the execution ends FAILED [DATABASE_ERROR]. Nothing on a stop path waits for the
database without that deadline.
"""

from __future__ import annotations

import dataclasses
import math
import signal
from collections.abc import Mapping
from typing import Any

import trio

from kestra_trio.engine.context import (
    EngineOptions,
    EngineServices,
    ExecutionResult,
    RunContext,
    StopRequest,
)
from kestra_trio.engine.progress import ProgressEvent
from kestra_trio.engine.scheduler import Scheduler
from kestra_trio.model.durations import format_duration
from kestra_trio.model.workflow import Workflow
from kestra_trio.observability.audit import AuditLogger
from kestra_trio.errors import IllegalTransition
from kestra_trio.observability.records import AuditEvent, AuditEventType, LogEntry, LogLevel, now_ms
from kestra_trio.state.states import Reason, State
from kestra_trio.storage.db import is_storage_failure
from kestra_trio.storage.executions import StateChange
from kestra_trio.storage.ports import AuditSink
from kestra_trio.storage.write_retry import WriteRetry


class ExecutionRun(RunContext):
    """One running execution: its context plus how it is stopped (the cancel registry's handle)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execution_scope = trio.CancelScope()

    # stopping --------------------------------------------------------------------------
    def stop(self, request: StopRequest) -> None:
        """Record why, say so, cancel: never blocks (the execution TIMEOUT audit event is
        written with the final state). In a process that runs only this execution, the stop
        also bounds every wait for the database (see `EngineServices.bound_writes_on_stop`)."""
        if self.stop_request is not None:
            return
        elapsed_ms = now_ms() - self.started_at
        self.stop_request = request = dataclasses.replace(request, elapsed_ms=elapsed_ms)
        self.progress(ProgressEvent.for_execution(self.execution_id, State.RUNNING, "STOPPING", request.message))
        if self.services.bound_writes_on_stop:
            bound_database_waits(self.services.writes, self.options)
        if request.reason == Reason.TIMEOUT:
            self.log_send.send_always(LogEntry(
                self.execution_id, None, LogLevel.ERROR, "scheduler", request.message,
                {"reason_code": request.reason.value, "timeout_ms": ms(self.workflow.timeout), "elapsed_ms": elapsed_ms},
            ))
        else:
            self.log_send.send_always(LogEntry(
                self.execution_id, None, LogLevel.WARN, "scheduler",
                f"Cancellation requested by {request.by}: {request.message}",
                {
                    "cancelled_by": request.by,
                    "reason": request.message,
                    **({"signal": signal.Signals(request.signal).name} if request.signal else {}),
                },
            ))
        self.execution_scope.cancel()

    async def forcing(self, signal_name: str) -> None:
        """A second stop signal: running plugins get SIGKILL now (the service set force_kill)."""
        stop = self.stop_request
        # "again" only when the stop itself came from a signal (not a timeout or a cancel
        # from another terminal)
        when = "again" if stop is not None and stop.signal is not None else (
            f"while stopping ({stop.message})" if stop is not None else "while stopping"
        )
        await self.log(
            LogLevel.WARN, "scheduler",
            f"Received {signal_name} {when}: killing running tasks now (SIGKILL, no grace period)",
            signal=signal_name,
        )
        self.progress(ProgressEvent.for_execution(self.execution_id, State.RUNNING, "FORCING", None))

    async def execution_timeout(self, seconds: float) -> None:
        await trio.sleep(seconds)
        self.stop(StopRequest(Reason.TIMEOUT, "system", f"execution timeout of {format_duration(seconds)} reached"))


def bound_database_waits(writes: WriteRetry, options: EngineOptions) -> None:
    """The process is stopping: writes the database refuses are retried until the tasks are
    stopped (kill grace) plus the close grace, not forever; say so if it refuses now."""
    bound = options.kill_grace + options.close_grace
    if writes.deadline <= trio.current_time() + bound:
        return  # bounded already
    writes.give_up_at(trio.current_time() + bound)
    if writes.failing:
        options.on_error(
            f"the database still refuses writes ({writes.last_error}): retrying for {bound:g} s at most, "
            "then what is not written is counted as lost"
        )


def ms(seconds: float | None) -> int | None:
    """Seconds as whole milliseconds for storage; None (and no limit) stays None."""
    return None if seconds is None or math.isinf(seconds) else int(seconds * 1000)


async def run_claimed(
    services: EngineServices,
    execution_id: str,
    workflow: Workflow,
    inputs: Mapping[str, Any],
    *,
    audit_sink: AuditSink,
    secrets: Mapping[str, str],
    started_at: int,
    workflow_revision: int | None = None,
    on_progress: Any = None,
    trigger: Mapping[str, Any] | None = None,
    task_status: trio.TaskStatus[ExecutionRun] = trio.TASK_STATUS_IGNORED,
) -> ExecutionResult:
    """Run an execution a worker has claimed (it is RUNNING since `started_at`) to its end.

    Hands its `ExecutionRun` to `task_status.started` — the handle the service stops it
    with — and returns what happened (it is all in the database too)."""
    run = ExecutionRun(
        services, execution_id, workflow, inputs, secrets=secrets,
        audit=AuditLogger(audit_sink, execution_id, services.options.on_error, services.writes),
        on_progress=on_progress, started_at=started_at, workflow_revision=workflow_revision, trigger=trigger,
    )
    services.collector.set_masker(execution_id, run.masker)
    scheduler = Scheduler(run)
    task_status.started(run)
    try:
        await run.log(LogLevel.INFO, "scheduler", "Execution started", state=State.RUNNING.value)
        run.progress(ProgressEvent.for_execution(execution_id, State.RUNNING, "STARTED", None))
        internal_error: BaseException | None = None
        try:
            async with trio.open_nursery() as timers:
                if workflow.timeout is not None:
                    timers.start_soon(run.execution_timeout, workflow.timeout)
                with run.execution_scope:
                    await scheduler.run()
                timers.cancel_scope.cancel()
        except* Exception as group:  # a bug in the engine (or a broken database): record it, never lose it
            internal_error = group.exceptions[0]
            services.options.on_error(_describe_failure(internal_error))
        with trio.CancelScope(shield=True):
            result = await _finish(run, scheduler, internal_error)
        # every line of the execution went through the collector (flushed before the end
        # state): a long-lived collector forgets its secrets
        services.collector.forget_masker(execution_id)
        result.workflow_revision = workflow_revision
        return result
    finally:
        run.log_send.close()


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe_failure(exc: BaseException) -> str:
    """A broken database (disk I/O error, read-only file) is not a bug of ours: say which."""
    exc = _first_leaf(exc)
    if is_storage_failure(exc):
        return f"database error: {exc}"
    return f"internal error: {exc!r}"


async def _finish(run: ExecutionRun, scheduler: Scheduler, internal_error: BaseException | None) -> ExecutionResult:
    stop = run.stop_request
    await scheduler.cancel_unstarted(stop, internal_error)
    # every task has ended: once this returns, each plugin line is written or counted lost
    await run.collector.flush()
    lost = run.collector.lost_for(run.execution_id)
    ended = now_ms()
    duration_ms = ended - run.started_at
    failed = scheduler.first_failure
    counts = scheduler.counts()
    if internal_error is not None:
        reason = Reason.DATABASE_ERROR if is_storage_failure(internal_error) else Reason.INTERNAL_ERROR
        state, message = State.FAILED, _describe_failure(internal_error)
    elif lost:
        # never SUCCESS, nor a plain CANCELLED, with part of the log missing
        state, reason = State.FAILED, Reason.DATABASE_ERROR
        message = f"{lost:,} log entries could not be written to the database ({run.writes.last_error})"
        if stop is not None:
            message += f"; {stop.describe()}"
    elif stop is not None and stop.reason == Reason.TIMEOUT:
        state, reason, message = State.FAILED, Reason.TIMEOUT, stop.message
    elif stop is not None:
        state, reason, message = State.CANCELLED, Reason.EXECUTION_CANCELLED, stop.describe()
    elif failed is not None:
        error_message = (failed.error or {}).get("message", "failed")
        state, reason = State.FAILED, Reason.TASK_FAILED
        message = f"task {failed.task_id!r} failed: {error_message}"
    else:
        state, reason, message = State.SUCCESS, Reason.COMPLETED, None
    message = run.masker.mask(message) if message else message
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    level = LogLevel.INFO if state == State.SUCCESS else (LogLevel.WARN if state == State.CANCELLED else LogLevel.ERROR)
    await run.log(
        level,
        "scheduler",
        f"Execution {state.value.lower()} in {format_duration(duration_ms / 1000)}"
        + (f": {message}" if message else "")
        + f" ({summary})",
        state=state.value,
        reason_code=reason.value,
        duration_ms=duration_ms,
        task_states=counts,
        **({"log_entries_lost": lost} if lost else {}),
    )
    audit: list[AuditEvent] = []
    if stop is not None and stop.reason == Reason.TIMEOUT:
        audit.append(
            AuditEvent(run.execution_id, AuditEventType.TIMEOUT, {
                "scope": "execution",
                "timeout_duration": format_duration(run.workflow.timeout or 0),
                "elapsed_time": format_duration((stop.elapsed_ms or 0) / 1000),
                "reason_code": Reason.TIMEOUT.value,
            })
        )
    if state == State.SUCCESS:
        audit.append(
            AuditEvent(run.execution_id, AuditEventType.COMPLETED, {"duration_ms": duration_ms, "task_count": len(run.workflow.tasks)})
        )
    elif state == State.CANCELLED:
        audit.append(
            AuditEvent(
                run.execution_id,
                AuditEventType.CANCELLED,
                {
                    "cancelled_by": stop.by if stop else "system",
                    "reason": stop.message if stop else None,
                    "pending_task_count": scheduler.cancelled_before_start,
                },
            )
        )
    else:
        audit.append(
            AuditEvent(
                run.execution_id,
                AuditEventType.FAILED,
                {"error_message": message, "failed_task_id": failed.task_id if failed else None, "reason_code": reason.value},
            )
        )
    # events and state changes the database refused until the process gave up go with the final state
    audit = [*run.audit.take_unwritten(), *audit]
    fields: dict[str, Any] = {"ended_at": ended}
    if failed is not None:
        fields["failed_task_id"] = failed.task_id
    if stop is not None:
        fields["cancelled_by"] = stop.by
    final = StateChange(run.execution_id, state, reason.value, message, fields=fields, audit=audit, at=ended)
    earlier, run.unwritten_changes = run.unwritten_changes, []
    try:
        stored = await run.commit(*earlier, final)
    except IllegalTransition:  # one of the earlier changes was stored after all: the final state alone
        run.unwritten_changes = []
        stored = await run.apply(final)
    run.progress(ProgressEvent.for_execution(run.execution_id, state, reason.value, message))
    database_error = None
    if reason == Reason.DATABASE_ERROR or not stored:
        unexpected = internal_error is not None and is_storage_failure(internal_error)
        database_error = str(_first_leaf(internal_error)) if unexpected else run.writes.last_error
    return ExecutionResult(
        execution_id=run.execution_id,
        workflow_id=run.workflow.id,
        state=state,
        reason_code=reason.value,
        message=message,
        duration_ms=duration_ms,
        tasks=scheduler.results,
        failed_task_id=failed.task_id if failed else None,
        error=failed.error if failed else None,
        stop=stop,
        log_entries_lost=run.collector.lost_for(run.execution_id),
        lost_unrecorded=run.collector.unrecorded_for(run.execution_id),
        state_stored=stored,
        database_error=database_error,
    )
