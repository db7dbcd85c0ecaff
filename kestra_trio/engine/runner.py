"""run_execution(): one execution, one root nursery.

    root nursery
    ├─ LogCollector.run          (outer: drains after everything else has stopped)
    ├─ GroupReaper watchdog      (no plugin group outlives the engine, even on SIGKILL)
    └─ services nursery
        ├─ cancel watcher        (`execution cancel` rows → stop)
        ├─ signal watcher        (SIGINT / SIGTERM / SIGHUP → stop; a second one → SIGKILL now)
        ├─ execution timeout     (→ stop with TIMEOUT)
        └─ execution scope → Scheduler → task scope → attempt scope → plugin process

Stopping = recording why, then cancelling the execution scope; each task records its own
CANCELLED state (shielded) on the way out. ExceptionGroups are unwrapped here and nowhere else.

While the database refuses writes every writer of the run waits for it (`WriteRetry`): the
run goes on once it takes writes again. A stop gives that wait a deadline (kill grace +
close grace); past it, what still cannot be written is counted (`log_entries_lost`), state
changes are kept for the final transaction, and the execution ends FAILED [DATABASE_ERROR].
Nothing on the stop path waits for the database without that deadline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import secrets as _secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from kestra_trio.config import DEFAULT_CLOSE_GRACE
from kestra_trio.engine.progress import ProgressEvent
from kestra_trio.engine.scheduler import Scheduler
from kestra_trio.errors import IllegalTransition
from kestra_trio.model.durations import format_duration
from kestra_trio.model.workflow import Workflow
from kestra_trio.observability.audit import AuditLogger
from kestra_trio.observability.collector import LogCollector, report_to_stderr
from kestra_trio.observability.records import AuditEvent, AuditEventType, LogEntry, LogLevel, now_ms
from kestra_trio.secrets.masking import Masker
from kestra_trio.secrets.providers import resolve_secrets
from kestra_trio.state.states import AttemptState, Reason, State
from kestra_trio.storage.audit import AuditStore
from kestra_trio.storage.ballast import Ballast, hold_ballast
from kestra_trio.storage.db import Database, is_storage_failure
from kestra_trio.storage.executions import AttemptWrite, ExecutionStore, NewExecution, NewTaskRun, StateChange
from kestra_trio.storage.logs import LogStore
from kestra_trio.storage.write_retry import WriteRetry, is_write_refused


#: signals that stop an execution (recorded CANCELLED by user); SIGHUP: the terminal closed
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def new_execution_id() -> str:
    return _secrets.token_hex(8)


@dataclass
class EngineOptions:
    max_parallel: int = 8
    kill_grace: float = 5.0
    #: after a stop, how long refused database writes are retried once the tasks are stopped
    close_grace: float = DEFAULT_CLOSE_GRACE
    cancel_poll_interval: float = 0.2
    handle_signals: bool = True
    trigger_type: str = "manual"
    workflow_path: str | None = None
    execution_id: str | None = None
    environ: Mapping[str, str] | None = None
    on_progress: Callable[[ProgressEvent], None] | None = None
    on_error: Callable[[str], None] = report_to_stderr
    collector_linger: float | None = 0.02


@dataclass(frozen=True)
class StopRequest:
    """Why the execution is being stopped before it finished on its own."""

    reason: Reason  # EXECUTION_CANCELLED or TIMEOUT
    by: str  # user | system
    message: str
    signal: int | None = None
    elapsed_ms: int | None = None  # since the execution started, when the stop was asked

    def describe(self) -> str:
        return self.message if self.reason == Reason.TIMEOUT else f"cancelled by {self.by}: {self.message}"


@dataclass
class TaskResult:
    task_id: str
    state: State
    reason_code: str | None = None
    attempts: int = 0
    duration_ms: int | None = None
    outputs: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass
class ExecutionResult:
    execution_id: str
    workflow_id: str
    state: State
    reason_code: str
    message: str | None
    duration_ms: int
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    failed_task_id: str | None = None
    error: dict[str, Any] | None = None
    stop: StopRequest | None = None
    #: log entries that could not be written (the database refused writes until the engine gave up)
    log_entries_lost: int = 0
    #: of those, entries whose loss could not be stored in the database either
    lost_unrecorded: int = 0
    #: False when the database did not take the final state (it stays RUNNING there)
    state_stored: bool = True
    #: what the database answered when it refused writes (None: it never did)
    database_error: str | None = None

    @property
    def storage_incomplete(self) -> bool:
        """Something of this execution is missing from the database: exit code 3."""
        return self.reason_code == Reason.DATABASE_ERROR or bool(self.log_entries_lost) or not self.state_stored


class ExecutionRun:
    """Everything one execution shares: ids, stores, the log channel, the masker, stop state."""

    def __init__(
        self,
        workflow: Workflow,
        inputs: Mapping[str, Any],
        *,
        db: Database,
        registry: Any,
        options: EngineOptions,
        secrets: Mapping[str, str],
    ) -> None:
        self.workflow = workflow
        self.inputs = dict(inputs)
        self.registry = registry
        self.options = options
        self.secrets = dict(secrets)
        self.masker = Masker(self.secrets.values())
        self.execution_id = options.execution_id or new_execution_id()
        self.store = ExecutionStore(db)
        self.log_store = LogStore(db)
        #: one retry policy for every write of the run: one outage report, one give-up deadline
        self.writes = WriteRetry(on_error=options.on_error)
        self.audit = AuditLogger(AuditStore(db), self.execution_id, options.on_error, self.writes)
        self.collector = LogCollector(
            self.log_store, linger=options.collector_linger, on_error=options.on_error, writes=self.writes,
            close_grace=options.close_grace, report_unrecorded_loss=False,  # the run's result reports it
        )
        self.collector.set_masker(self.execution_id, self.masker)
        self.log_send = self.collector.sender()
        #: state changes the database refused until the run gave up: retried in the final transaction
        self.unwritten_changes: list[StateChange] = []
        self.stop_request: StopRequest | None = None
        self.execution_scope = trio.CancelScope()
        self.signal_scope = trio.CancelScope()
        #: set by a second Ctrl+C: running plugins get SIGKILL without waiting the grace period
        self.force_kill = trio.Event()
        self.reaper: Any = None
        self.workdir = Path(workflow.source_path).resolve().parent if workflow.source_path else None
        self.started_at = now_ms()

    # logging ---------------------------------------------------------------------------
    async def log(
        self, level: LogLevel, source: str, message: str, *, task_id: str | None = None, **metadata: Any
    ) -> None:
        """An engine line: never waits behind plugin output (see `LogSender.send_always`)."""
        self.log_send.send_always(LogEntry(self.execution_id, task_id, level, source, message, metadata))

    def progress(self, event: ProgressEvent) -> None:
        if self.options.on_progress is not None:
            self.options.on_progress(event)

    async def apply(self, *changes: StateChange) -> bool:
        """Apply state changes in one transaction; while the database refuses, wait for it
        (until a stop's deadline). False: still refused then; the changes are kept for the
        final transaction (`unwritten_changes`)."""
        try:
            results = await self.writes.call("state changes", self.store.apply, *changes)
        except Exception as exc:
            if not is_write_refused(exc):
                raise
            self.unwritten_changes.extend(changes)
            return False
        for result in results:
            if result.audit_failed:
                self.options.on_error(f"audit write failed (the state change was kept): {result.audit_failed}")
        return True

    async def commit(self, *changes: StateChange) -> bool:
        """Flush the log, then apply `changes`: a state is never visible before the lines
        that led to it. False when the database took neither (the changes are kept)."""
        if not await self.collector.flush():
            self.unwritten_changes.extend(changes)
            return False
        return await self.apply(*changes)

    # stopping --------------------------------------------------------------------------
    def stop(self, request: StopRequest) -> None:
        """Record why, bound every wait for the database, say so, cancel: never blocks (the
        execution TIMEOUT audit event is written with the final state)."""
        if self.stop_request is not None:
            return
        elapsed_ms = now_ms() - self.started_at
        self.stop_request = request = dataclasses.replace(request, elapsed_ms=elapsed_ms)
        bound = self.options.kill_grace + self.options.close_grace
        self.writes.give_up_at(trio.current_time() + bound)
        self.progress(ProgressEvent.for_execution(self.execution_id, State.RUNNING, "STOPPING", request.message))
        if self.writes.failing:
            self.options.on_error(
                f"the database still refuses writes ({self.writes.last_error}): retrying for {bound:g} s at most, "
                "then what is not written is counted as lost"
            )
        if request.reason == Reason.TIMEOUT:
            self.log_send.send_always(LogEntry(
                self.execution_id, None, LogLevel.ERROR, "scheduler", request.message,
                {"reason_code": request.reason.value, "timeout_ms": _ms(self.workflow.timeout), "elapsed_ms": elapsed_ms},
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

    async def watch_cancel_requests(self) -> None:
        """Reads only, then stops: a database that refuses writes cannot keep a cancel waiting."""
        while True:
            await trio.sleep(self.options.cancel_poll_interval)
            try:
                if not await self.store.has_cancel_request(self.execution_id):
                    continue
                requests = await self.store.pending_cancel_requests(self.execution_id)
            except Exception as exc:  # a locked or broken db must not kill the run
                self.options.on_error(f"cannot read cancel requests ({exc})")
                continue
            if requests:
                first = requests[0]
                self.stop(
                    StopRequest(Reason.EXECUTION_CANCELLED, first.requested_by, first.reason or "cancelled by request")
                )
                try:
                    await self.store.mark_cancel_requests_handled(self.execution_id, [r.id for r in requests])
                except Exception:  # the database refuses writes: the stop stands, the mark waits
                    pass

    async def watch_signals(
        self, signals: AsyncIterator[int], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """For the whole run (finishing included): Ctrl+C / SIGTERM / SIGHUP (terminal closed)
        become a recorded stop. Another one while stopping skips the kill grace period.

        `signals` is opened before the execution is created, so a signal that arrives while it
        is being created waits here instead of killing the engine with the execution PENDING."""
        with self.signal_scope:
            task_status.started()
            async for signum in signals:
                name = signal.Signals(signum).name
                if self.stop_request is None:
                    self.stop(
                        StopRequest(Reason.EXECUTION_CANCELLED, "user", f"received {name}", signal=int(signum))
                    )
                elif not self.force_kill.is_set():
                    self.force_kill.set()
                    # "again" only when the stop itself came from a signal (not a timeout or a
                    # cancel from another terminal)
                    when = "again" if self.stop_request.signal is not None else f"while stopping ({self.stop_request.message})"
                    await self.log(
                        LogLevel.WARN, "scheduler",
                        f"Received {name} {when}: killing running tasks now (SIGKILL, no grace period)",
                        signal=name,
                    )
                    self.progress(ProgressEvent.for_execution(self.execution_id, State.RUNNING, "FORCING", None))

    async def execution_timeout(self, seconds: float) -> None:
        await trio.sleep(seconds)
        self.stop(
            StopRequest(Reason.TIMEOUT, "system", f"execution timeout of {format_duration(seconds)} reached")
        )


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None or math.isinf(seconds) else int(seconds * 1000)


async def recover_lost_executions(store: ExecutionStore, logs: LogStore | None = None) -> list[str]:
    """Executions left RUNNING by an engine on this host that no longer exists become FAILED,
    with a scheduler ERROR line saying so (the lost engine could not write its own)."""
    lost = []
    for execution_id, pid in await store.unfinished_on_host(socket.gethostname()):
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        runs = await store.task_runs(execution_id)
        open_attempts = {a.task_id: a for a in await store.attempts(execution_id) if a.state == "RUNNING"}
        # the real end is unknown (the engine could not record it): the detection time is
        # the end, and the messages say it was detected
        detected = now_ms()
        message = f"the engine process (pid {pid}) died while this task was unfinished (detected by pid {os.getpid()})"
        error = {"message": message, "type": "EngineLost", "reason_code": Reason.ENGINE_LOST.value}
        changes = []
        for run in runs:
            if run.state in ("SUCCESS", "FAILED", "CANCELLED"):
                continue
            attempt = open_attempts.get(run.task_id)
            changes.append(
                StateChange(
                    execution_id, State.FAILED, Reason.ENGINE_LOST.value, message, task_id=run.task_id,
                    fields={"ended_at": detected, "error": error},
                    attempt=None if attempt is None else AttemptWrite(
                        attempt.number, AttemptState.FAILED.value, attempt.started_at, Reason.ENGINE_LOST.value,
                        message, pid=attempt.pid, ended_at=detected,
                    ),
                    at=detected,
                )
            )
        unfinished = [c.task_id for c in changes if c.task_id is not None]
        changes.append(
            StateChange(
                execution_id, State.FAILED, Reason.ENGINE_LOST.value,
                f"the engine process (pid {pid}) died before the execution finished",
                fields={"ended_at": detected},
                audit=[AuditEvent(execution_id, AuditEventType.FAILED, {
                    "error_message": f"the engine process (pid {pid}) died",
                    "failed_task_id": unfinished[0] if unfinished else None,
                    "reason_code": Reason.ENGINE_LOST.value,
                })],
                at=detected,
            )
        )
        try:
            await store.apply(*changes)
            lost.append(execution_id)
        except Exception:
            continue
        if logs is not None:
            entry = LogEntry(
                execution_id, None, LogLevel.ERROR, "scheduler",
                f"Execution failed: the engine process (pid {pid}) died before the execution finished "
                f"[ENGINE_LOST]; {len(unfinished)} unfinished task(s) marked FAILED"
                + (f": {', '.join(unfinished)}" if unfinished else "")
                + "; lines it had not yet written are lost",
                {"reason_code": Reason.ENGINE_LOST.value, "engine_pid": pid, "detected_by_pid": os.getpid()},
            )
            try:
                await logs.insert_batch([entry])
            except Exception:
                pass
    return lost


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def run_execution(
    workflow: Workflow,
    inputs: Mapping[str, Any],
    *,
    db: Database,
    registry: Any,
    options: EngineOptions | None = None,
) -> ExecutionResult:
    """Run one execution to its end and return what happened (it is all in the database too)."""
    options = options or EngineOptions()
    with contextlib.ExitStack() as stack:
        signals = stack.enter_context(trio.open_signal_receiver(*STOP_SIGNALS)) if options.handle_signals else None
        # room for the last writes (loss counts, final state) if the disk fills up during the run
        ballast = stack.enter_context(hold_ballast(db.path))
        return await _run_execution(workflow, inputs, db, registry, options, signals, ballast)


async def _run_execution(
    workflow: Workflow, inputs: Mapping[str, Any], db: Database, registry: Any, options: EngineOptions,
    signals: AsyncIterator[int] | None, ballast: Ballast,
) -> ExecutionResult:
    from kestra_trio.plugin_runtime.reaper import open_group_reaper

    secrets = resolve_secrets(options.environ)
    run = ExecutionRun(workflow, inputs, db=db, registry=registry, options=options, secrets=secrets)
    run.writes.on_give_up = ballast.release
    scheduler = Scheduler(run)
    result: ExecutionResult | None = None
    await recover_lost_executions(run.store, run.log_store)
    await run.store.create(
        NewExecution(
            id=run.execution_id,
            workflow_id=workflow.id,
            namespace=workflow.namespace,
            trigger_type=options.trigger_type,
            inputs=run.masker.mask_value(run.inputs),
            workflow_path=options.workflow_path,
            timeout_ms=_ms(workflow.timeout),
            engine_pid=os.getpid(),
            engine_host=socket.gethostname(),
        ),
        [
            NewTaskRun(
                task_id=spec.id,
                position=index,
                type=spec.type,
                needs=spec.needs,
                max_attempts=spec.retry.max_attempts,
                timeout_ms=_ms(spec.timeout),
            )
            for index, spec in enumerate(workflow.tasks)
        ],
    )
    run.progress(ProgressEvent.for_execution(run.execution_id, State.PENDING, "CREATED", None))
    async with trio.open_nursery() as root:
        await root.start(run.collector.run)
        if signals is not None:
            await root.start(run.watch_signals, signals)
        try:
            await run.log(
                LogLevel.INFO,
                "scheduler",
                f"Execution created for workflow {workflow.id}",
                workflow_id=workflow.id,
                trigger_type=options.trigger_type,
                task_count=len(workflow.tasks),
            )
            async with open_group_reaper() as reaper:
                run.reaper = reaper
                result = await _run_started(run, scheduler)
        finally:
            run.signal_scope.cancel()
            run.log_send.close()
            run.collector.close()
    assert result is not None
    # the collector has ended: its counts are final (the run's result reports them)
    stats = run.collector.statistics()
    result.log_entries_lost, result.lost_unrecorded = stats.lost, stats.lost_unrecorded
    if stats.lost or result.reason_code == Reason.DATABASE_ERROR or not result.state_stored:
        result.database_error = run.writes.last_error or result.database_error
    return result


async def _run_started(run: ExecutionRun, scheduler: Scheduler) -> ExecutionResult:
    workflow = run.workflow
    run.started_at = now_ms()  # the RUNNING transition's time: never before created_at
    await run.apply(
        StateChange(
            run.execution_id,
            State.RUNNING,
            Reason.STARTED.value,
            fields={"started_at": run.started_at},
            audit=[AuditEvent(run.execution_id, AuditEventType.STARTED, {"workflow_id": workflow.id})],
            at=run.started_at,
        )
    )
    await run.log(LogLevel.INFO, "scheduler", "Execution started", state=State.RUNNING.value)
    run.progress(ProgressEvent.for_execution(run.execution_id, State.RUNNING, "STARTED", None))
    internal_error: BaseException | None = None
    try:
        async with trio.open_nursery() as services:
            services.start_soon(run.watch_cancel_requests)
            if workflow.timeout is not None:
                services.start_soon(run.execution_timeout, workflow.timeout)
            with run.execution_scope:
                await scheduler.run()
            services.cancel_scope.cancel()
    except* Exception as group:  # a bug in the engine (or a broken database): record it, never lose the execution
        internal_error = group.exceptions[0]
        run.options.on_error(_describe_failure(internal_error))
    with trio.CancelScope(shield=True):
        return await _finish(run, scheduler, internal_error)


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _describe_failure(exc: BaseException) -> str:
    exc = _first_leaf(exc)
    if is_storage_failure(exc):
        return f"database error: {exc}"
    return f"internal error: {exc!r}"


async def _finish(run: ExecutionRun, scheduler: Scheduler, internal_error: BaseException | None) -> ExecutionResult:
    stop = run.stop_request
    await scheduler.cancel_unstarted(stop, internal_error)
    # every task has ended: once this returns, each plugin line is written or counted lost
    await run.collector.flush()
    lost = run.collector.statistics().lost
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
    # events and state changes the database refused until the run gave up go with the final state
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
        log_entries_lost=lost,
        state_stored=stored,
        database_error=str(_first_leaf(internal_error)) if reason == Reason.DATABASE_ERROR and internal_error else None,
    )

