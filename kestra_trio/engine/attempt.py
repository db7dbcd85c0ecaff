"""TaskWorker: one task run = attempts under a per-attempt timeout scope, with retry/backoff.

Each state change is written before the progress event, and every log line of a task is
flushed (collector barrier) before its terminal state is committed (`ExecutionRun.commit`).
Whatever stops a task (timeout, cancel, crash), it records why, who, the signal sent, the
exit code and the stderr tail — in its error and as a final log line.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

import trio

from kestra_trio.engine.context import RunContext, StopRequest, TaskResult
from kestra_trio.engine.progress import ProgressEvent
from kestra_trio.engine.retry import decide
from kestra_trio.engine.slots import TaskSlots
from kestra_trio.errors import IllegalTransition, KestraTrioError
from kestra_trio.model.durations import format_duration
from kestra_trio.model.templates import NO_ITEM, TemplateError, render, secret_names
from kestra_trio.model.workflow import TaskSpec, subflow_call
from kestra_trio.observability.records import AuditEventType, LogLevel, now_ms
from kestra_trio.plugin_runtime.runtime import Invocation, Outcome, ProcessHandle
from kestra_trio.plugin_runtime.sandbox import SandboxPolicy
from kestra_trio.state.states import AttemptState, Reason, State
from kestra_trio.storage.executions import AttemptWrite, StateChange


class TaskSlot:
    """One task's hold on the process-wide slots: taken to run, given back while it waits
    out a retry backoff (--max-parallel counts running tasks), taken again (ahead of tasks
    that have not started) to resume."""

    __slots__ = ("_slots", "_held", "_taken_before")

    def __init__(self, slots: TaskSlots) -> None:
        self._slots = slots
        self._held = False
        self._taken_before = False

    async def take(self) -> None:
        await self._slots.acquire(resuming=self._taken_before)
        self._held = self._taken_before = True

    def give_back(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()


class _HandleSlot:
    """Receives the ProcessHandle a runtime hands over via `task_status.started(handle)`."""

    def __init__(self) -> None:
        self.handle: ProcessHandle | None = None

    def started(self, value: ProcessHandle | None = None) -> None:
        self.handle = value


class _AttemptTimer:
    """One attempt's task timeout. When it fires first it stops the attempt and records the
    timeout at once (ERROR line, task-scope TIMEOUT audit event), not when the process is
    gone: a stop of the execution during the kill grace then cannot hide it."""

    def __init__(
        self, task_id: str, attempt: int, timeout: float | None, started: int, handle_slot: _HandleSlot
    ) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self.timeout = timeout
        self.started = started
        self.handle_slot = handle_slot
        self.fired = False
        self._ended = False
        self._sleep = trio.CancelScope(shield=True)  # an execution stop must not wake it early

    def attempt_ended(self) -> None:
        self._ended = True
        self._sleep.cancel()

    async def watch(self, run: RunContext, attempt_scope: trio.CancelScope, deadline: float) -> None:
        with self._sleep:
            await trio.sleep_until(deadline)
        # the attempt ended on its own, or the execution is being stopped: that is its cause
        if self._ended or trio.current_effective_deadline() == -math.inf:
            return
        self.fired = True
        attempt_scope.cancel()  # first: the process is stopped even while the database refuses writes
        timeout = self.timeout or 0.0
        limit = format_duration(timeout)
        elapsed = now_ms() - self.started
        handle = self.handle_slot.handle
        stopping = "" if handle is None else (
            f"; stopping process group {handle.pgid}: SIGTERM, then SIGKILL after "
            f"{format_duration(run.options.kill_grace)} if it is still running"
        )
        await run.log(
            LogLevel.ERROR, "worker", f"Task {self.task_id} reached its timeout of {limit} (attempt {self.attempt}){stopping}",
            task_id=self.task_id, attempt=self.attempt, reason_code=Reason.TIMEOUT.value,
            timeout_ms=int(timeout * 1000), elapsed_ms=elapsed, cancelled_by="system",
        )
        with trio.CancelScope(shield=True):
            await run.audit.record(
                AuditEventType.TIMEOUT, scope="task", task_id=self.task_id, attempt=self.attempt,
                timeout_duration=limit, elapsed_time=format_duration(elapsed / 1000), reason_code=Reason.TIMEOUT.value,
            )


def _stop_details(handle: ProcessHandle | None) -> str:
    if handle is None:
        return "no process was running"
    sent = handle.signal_sent or "no signal"
    if handle.escalation:
        sent = f"SIGTERM, then SIGKILL ({handle.escalation})"
    code = handle.exit_code
    return f"sent {sent} to process group {handle.pgid}, exit code {code if code is not None else 'unknown'}"


class TaskWorker:
    def __init__(self, run: RunContext) -> None:
        self.run = run

    async def run_task(
        self, result: TaskResult, upstream: Mapping[str, Any], slot: TaskSlot, *,
        spec: TaskSpec | None = None, item: Any = NO_ITEM, item_index: int | None = None, first_attempt: int = 0,
    ) -> tuple[TaskResult, dict[str, Any] | None]:
        """Run every attempt of one task (holding `slot`); returns its record and, when it
        succeeded, its outputs as the plugin gave them (for the templates of tasks below).
        A for_each iteration (`each[2]`) passes its task's `spec`, its `item` and index; a
        restarted task the attempts it had (`first_attempt`): new ones are numbered after them.

        Raises:
            trio.Cancelled: the execution was stopped; the task's CANCELLED state is recorded first.
        """
        state: dict[str, Any] = {
            "attempt": first_attempt, "base": first_attempt, "started_at": None, "handle": None, "attempt_started": None, "attempt_open": False,
            "result": result, "upstream": upstream, "slot": slot, "outputs": None,
            "spec": spec, "item": item, "item_index": item_index,
        }
        try:
            await self._attempts(result.task_id, state)
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await self._record_cancelled(result.task_id, state)
            raise
        return result, state["outputs"]

    async def run_subflow(
        self, result: TaskResult, upstream: Mapping[str, Any], *, first_attempt: int = 0
    ) -> tuple[TaskResult, dict[str, Any] | None]:
        """A `core/flow.subflow` task: start the child execution, wait for it (`wait: true`),
        and take its id, state and workflow outputs as outputs. One attempt, no process."""
        run = self.run
        task_id = result.task_id
        spec = run.workflow.task(task_id)
        attempt = first_attempt + 1
        st: dict[str, Any] = {"attempt": attempt, "base": first_attempt, "started_at": None, "attempt_started": None,
                              "result": result, "handle": None, "spec": spec, "attempt_open": False, "outputs": None}
        try:
            call = subflow_call(render(dict(spec.inputs), run.template_context(task_id, attempt, upstream)))
        except TemplateError as exc:
            st["attempt"] = first_attempt
            await self._fail(task_id, st, Outcome.failure(Reason.TEMPLATE_ERROR, str(exc), type="TemplateError"))
            return result, None
        started = now_ms()
        st.update(started_at=started, attempt_started=started, attempt_open=True)
        await run.apply(StateChange(
            run.execution_id, State.RUNNING, Reason.STARTED.value, task_id=task_id,
            fields={"attempt_count": attempt, "started_at": started, "inputs": run.masker.mask_value(
                {"workflow": call.workflow, "inputs": dict(call.inputs), "wait": call.wait})},
            attempt=AttemptWrite(attempt, AttemptState.RUNNING.value, started), at=started,
        ))
        result.state, result.attempts = State.RUNNING, attempt
        run.progress(ProgressEvent(run.execution_id, task_id, State.RUNNING, "STARTED", None, attempt, attempt, spec.type))
        launcher = run.services.subflows
        try:
            if launcher is None:
                raise LookupError("subflows run only inside a service (kestra-trio run, the server)")
            child = await launcher.start(run, task_id, call)
        except (KestraTrioError, LookupError) as exc:
            await self._fail(task_id, st, Outcome.failure(Reason.PLUGIN_FAILED, f"subflow not started: {exc}", type="SubflowRefused"))
            return result, None
        await run.log(
            LogLevel.INFO, "worker",
            f"Task {task_id} started subflow execution {child} (workflow {call.workflow}); "
            f"its logs: kestra-trio execution logs {child}",
            task_id=task_id, child_execution_id=child, wait=call.wait,
        )
        if not call.wait:
            await self._succeed(task_id, st, Outcome.success({"execution_id": child, "state": State.QUEUED.value, "outputs": {}}))
            return result, st["outputs"]
        try:
            ended = await launcher.wait(child)
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                stop = run.stop_request or StopRequest(Reason.EXECUTION_CANCELLED, "system", "cancelled")
                await launcher.stop(child, stop)
                await self._record_cancelled(task_id, st)
            raise
        outputs = {"execution_id": child, "state": ended.state.value, "outputs": ended.outputs or {}}
        if ended.state == State.SUCCESS:
            await self._succeed(task_id, st, Outcome.success(outputs))
            return result, st["outputs"]
        await self._fail(task_id, st, Outcome.failure(
            Reason.PLUGIN_FAILED, f"subflow execution {child} ended {ended.state.value}: {ended.message or ended.reason_code}",
            type="SubflowFailed", execution_id=child,
        ))
        return result, None

    async def fail_unstarted(self, result: TaskResult, outcome: Outcome) -> None:
        """A task that fails before any attempt (a run_if or for_each that cannot be rendered)."""
        st = {"attempt": 0, "base": 0, "started_at": None, "attempt_started": None, "result": result, "handle": None,
              "spec": None}
        await self._fail(result.task_id, st, outcome)

    async def _attempts(self, task_id: str, st: dict[str, Any]) -> bool:
        run = self.run
        spec = st["spec"] or run.workflow.task(task_id)
        result: TaskResult = st["result"]
        try:
            manifest, action = run.registry.resolve(spec.type)
        except LookupError as exc:
            return await self._fail(task_id, st, Outcome.failure(Reason.UNKNOWN_PLUGIN, str(exc), type="UnknownPlugin"))
        max_attempts = st["base"] + spec.retry.max_attempts
        granted = _granted_secrets(spec.inputs, run.secrets)
        policy = SandboxPolicy.for_task(run.workflow, spec)
        runtime = run.services.runtime_for(run, policy)
        while True:
            st["attempt"] += 1
            attempt = st["attempt"]
            st["handle"] = None
            try:
                resolved = render(
                    dict(spec.inputs),
                    run.template_context(
                        spec.id, attempt, st["upstream"], item=st["item"], item_index=st["item_index"]
                    ),
                    # a whole-value template into a string input gives text: "{{ n }}" -> "2"
                    schema=action.input_schema,
                )
            except TemplateError as exc:
                st["attempt_started"] = now_ms()
                return await self._fail(task_id, st, Outcome.failure(Reason.TEMPLATE_ERROR, str(exc), type="TemplateError"))
            masked_inputs = run.masker.mask_value(resolved)
            started = now_ms()
            st["attempt_started"] = started
            st["attempt_open"] = True
            fields: dict[str, Any] = {"attempt_count": attempt, "inputs": masked_inputs}
            if st["started_at"] is None:
                st["started_at"] = started
                fields["started_at"] = started
                if policy is not None:
                    fields["sandbox"] = policy.describe()
            await run.apply(
                StateChange(
                    run.execution_id, State.RUNNING, Reason.STARTED.value, task_id=task_id, fields=fields,
                    attempt=AttemptWrite(attempt, AttemptState.RUNNING.value, started), at=started,
                )
            )
            result.state, result.attempts = State.RUNNING, attempt
            await run.log(
                LogLevel.INFO, "worker",
                f"Task {task_id} started: {spec.type} (attempt {attempt}/{max_attempts})",
                task_id=task_id, attempt=attempt, type=spec.type, inputs=_bounded(masked_inputs, run.execution_id, task_id),
            )
            run.progress(
                ProgressEvent(run.execution_id, task_id, State.RUNNING, "STARTED", None, attempt, max_attempts, spec.type)
            )
            invocation = Invocation(
                execution_id=run.execution_id, task_id=task_id, attempt=attempt, task_type=spec.type,
                manifest=manifest, action=action, inputs=resolved, secrets=granted,
                workdir=run.workdir, policy=policy, masker=run.masker,
            )
            handle_slot = _HandleSlot()
            timeout = run.task_timeout(spec)
            timer = _AttemptTimer(task_id, attempt, timeout, started, handle_slot)
            outcome, stopped = await self._run_attempt(runtime, invocation, st, timer)
            if stopped is not None and not timer.fired:
                raise stopped  # the execution was stopped first: run_task records why
            with trio.CancelScope(shield=stopped is not None):  # the task timeout came first: it is recorded
                if timer.fired or outcome is None:
                    outcome = await self._timed_out(task_id, timeout or 0.0, attempt, handle_slot.handle, started)
                st["attempt_open"] = False  # the process is gone; what follows is bookkeeping
                if outcome.metrics:
                    await self._record_metrics(task_id, attempt, outcome.metrics)
                if outcome.ok:
                    return await self._succeed(task_id, st, outcome)
                decision = decide(spec.retry, attempt - st["base"], outcome.reason_code or Reason.PLUGIN_FAILED)
                if decision is None:
                    await self._fail(task_id, st, outcome)
                elif stopped is not None:
                    st["timed_out"] = outcome  # no retry now: the task is cancelled, its attempt TIMED_OUT
            if stopped is not None:
                await trio.lowlevel.checkpoint()  # the execution scope is cancelled: a fresh Cancelled
                raise stopped
            if decision is None:
                return False
            await self._backoff(task_id, st, outcome, st["base"] + decision.next_attempt, decision.delay)
            # a task waiting to retry does not run: --max-parallel counts running tasks
            st["slot"].give_back()
            await trio.sleep(decision.delay)
            await st["slot"].take()

    async def _run_attempt(
        self, runtime: Any, invocation: Invocation, st: dict[str, Any], timer: _AttemptTimer
    ) -> tuple[Outcome | None, trio.Cancelled | None]:
        """Run one attempt under its task timeout: (its outcome — None when the timeout
        stopped it —, the Cancelled of an execution stop that reached it, to re-raise).

        Whichever stop comes first is the cause (docs/engine.md "Timeouts"): the timeout is
        recorded the moment it fires, and a stop that lands while the process is being killed
        only ends the execution; the reverse holds too (`_AttemptTimer.watch`)."""
        outcome: Outcome | None = None
        stopped: trio.Cancelled | None = None
        # a Cancelled must not leave the nursery (it would come out wrapped in an ExceptionGroup)
        async with trio.open_nursery() as nursery:
            try:
                with trio.CancelScope() as attempt_scope:
                    if timer.timeout is not None:
                        nursery.start_soon(timer.watch, self.run, attempt_scope, trio.current_time() + timer.timeout)
                    try:
                        outcome = await runtime.run_action(
                            invocation, log_send=self.run.log_send, task_status=timer.handle_slot,
                        )
                    finally:
                        st["handle"] = timer.handle_slot.handle
            except trio.Cancelled as exc:
                stopped = exc
            finally:
                timer.attempt_ended()
        return outcome, stopped

    async def _record_metrics(self, task_id: str, attempt: int, metrics: tuple[Any, ...]) -> None:
        """`::{"metrics": [...]}::` lines of one attempt, masked (they are plugin text)."""
        masker = self.run.masker
        masked = [dataclasses.replace(m, name=masker.mask(m.name), tags=masker.mask_value(m.tags)) for m in metrics]
        await self.run.store.record_metrics(self.run.execution_id, task_id, attempt, masked)

    async def _timed_out(
        self, task_id: str, timeout: float, attempt: int, handle: ProcessHandle | None, started: int
    ) -> Outcome:
        run = self.run
        limit = format_duration(timeout)
        elapsed_ms = now_ms() - started  # the limit plus the time the process took to die
        details = _stop_details(handle)
        message = f"Task {task_id} timed out after {limit} (attempt {attempt}); {details}"
        await run.log(
            LogLevel.ERROR, "worker", message, task_id=task_id, attempt=attempt, reason_code=Reason.TIMEOUT.value,
            timeout_ms=int(timeout * 1000), elapsed_ms=elapsed_ms, signal=handle.signal_sent if handle else None,
            exit_code=handle.exit_code if handle else None, cancelled_by="system",
        )
        return Outcome.failure(
            Reason.TIMEOUT, f"task timed out after {limit}", type="TaskTimeout",
            exit_code=handle.exit_code if handle else None,
            signal=handle.signal_sent if handle else None, cancelled_by="system",
            stderr_tail=list(handle.stderr_tail) if handle else None,  # what a user reads first
        )

    async def _succeed(self, task_id: str, st: dict[str, Any], outcome: Outcome) -> bool:
        run = self.run
        result: TaskResult = st["result"]
        outputs = outcome.outputs or {}
        masked = run.masker.mask_value(outputs)
        ended = now_ms()
        duration = ended - (st["started_at"] or ended)
        await run.log(
            LogLevel.INFO, "worker", f"Task {task_id} succeeded in {format_duration(duration / 1000)}",
            task_id=task_id, attempt=st["attempt"], status=State.SUCCESS.value, duration_ms=duration,
            outputs=_bounded(masked, run.execution_id, task_id),
        )
        await run.commit(
            StateChange(
                run.execution_id, State.SUCCESS, Reason.COMPLETED.value, task_id=task_id,
                # a failed attempt before this one left its error on the task: it is history now
                # (the attempts keep it), not the task's error
                fields={"outputs": masked, "ended_at": ended, "duration_ms": duration, "error": None},
                attempt=AttemptWrite(
                    st["attempt"], AttemptState.SUCCESS.value, st["attempt_started"], Reason.COMPLETED.value,
                    exit_code=outcome.exit_code, pid=_pid(st), ended_at=ended,
                ),
                at=ended,
            )
        )
        st["outputs"] = outputs
        result.state, result.reason_code, result.outputs, result.duration_ms = State.SUCCESS, Reason.COMPLETED.value, masked, duration
        run.progress(ProgressEvent(run.execution_id, task_id, State.SUCCESS, Reason.COMPLETED.value, None, st["attempt"], 0))
        return True

    def _error(self, outcome: Outcome, attempt: int) -> dict[str, Any]:
        error = dict(outcome.error or {"message": "failed"})
        error["reason_code"] = (outcome.reason_code or Reason.PLUGIN_FAILED).value
        error["attempt"] = attempt
        return self.run.masker.mask_value(error)

    async def _fail(self, task_id: str, st: dict[str, Any], outcome: Outcome) -> bool:
        run = self.run
        result: TaskResult = st["result"]
        reason = (outcome.reason_code or Reason.PLUGIN_FAILED).value
        error = self._error(outcome, st["attempt"])
        allowed = (st["spec"] or run.workflow.task(task_id.split("[", 1)[0])).allow_failure
        if allowed:  # `inspect` says "failure allowed"; the execution goes on
            error["failure_allowed"] = True
        ended = now_ms()
        duration = ended - (st["started_at"] or ended)
        exit_part = f" (exit code {error.get('exit_code')})" if error.get("exit_code") is not None else ""
        exit_part += " (failure allowed)" if allowed else ""
        await run.log(
            LogLevel.ERROR, "worker", f"Task {task_id} failed: {error.get('message')}{exit_part} [{reason}]",
            task_id=task_id, attempt=st["attempt"], status=State.FAILED.value, duration_ms=duration, error=error,
            reason_code=reason,
        )
        attempt_write = None
        if st["attempt_started"] is not None and st["attempt"] > 0:
            attempt_write = AttemptWrite(
                st["attempt"],
                (AttemptState.TIMED_OUT if reason == Reason.TIMEOUT.value else AttemptState.FAILED).value,
                st["attempt_started"], reason, str(error.get("message")), exit_code=outcome.exit_code,
                signal=error.get("signal"), pid=_pid(st), ended_at=ended,
            )
        await run.commit(
            StateChange(
                run.execution_id, State.FAILED, reason, str(error.get("message")), task_id=task_id,
                fields={"error": error, "ended_at": ended, "duration_ms": duration, "attempt_count": st["attempt"]},
                attempt=attempt_write, at=ended,
            )
        )
        result.state, result.reason_code, result.error, result.duration_ms = State.FAILED, reason, error, duration
        result.attempts = st["attempt"]
        run.progress(ProgressEvent(run.execution_id, task_id, State.FAILED, reason, str(error.get("message")), st["attempt"]))
        return False

    async def _backoff(self, task_id: str, st: dict[str, Any], outcome: Outcome, next_attempt: int, delay: float) -> None:
        run = self.run
        spec = st["spec"] or run.workflow.task(task_id)
        reason = (outcome.reason_code or Reason.PLUGIN_FAILED).value
        error = self._error(outcome, st["attempt"])
        ended = now_ms()
        await run.log(
            LogLevel.WARN, "worker",
            f"Task {task_id} attempt {st['attempt']} failed: {error.get('message')} [{reason}]; "
            f"retrying (attempt {next_attempt}/{st['base'] + spec.retry.max_attempts}) in {format_duration(delay)}",
            task_id=task_id, attempt=st["attempt"], next_attempt=next_attempt, delay_ms=int(delay * 1000),
            reason_code=reason, error=error,
        )
        await run.apply(
            StateChange(
                run.execution_id, State.WAITING, Reason.BACKOFF.value,
                f"attempt {st['attempt']} failed ({reason}); next attempt in {format_duration(delay)}",
                task_id=task_id, fields={"error": error},
                attempt=AttemptWrite(
                    st["attempt"],
                    (AttemptState.TIMED_OUT if reason == Reason.TIMEOUT.value else AttemptState.FAILED).value,
                    st["attempt_started"], reason, str(error.get("message")), exit_code=outcome.exit_code,
                    signal=error.get("signal"), pid=_pid(st), ended_at=ended,
                ),
                audit=[],
                at=ended,
            )
        )
        await run.audit.record(
            AuditEventType.RETRY, task_id=task_id, attempt=st["attempt"], next_attempt=next_attempt,
            delay_ms=int(delay * 1000), reason_code=reason,
        )
        st["result"].state = State.WAITING
        run.progress(
            ProgressEvent(run.execution_id, task_id, State.WAITING, Reason.BACKOFF.value, f"retry in {format_duration(delay)}",
                          st["attempt"], st["base"] + spec.retry.max_attempts, spec.type)
        )

    async def _record_cancelled(self, task_id: str, st: dict[str, Any]) -> None:
        """The execution scope was cancelled: record why, who, signal and exit code."""
        run = self.run
        result: TaskResult = st["result"]
        if result.state.is_terminal:
            return
        stop = run.stop_request
        if stop is not None and stop.reason == Reason.TIMEOUT:
            reason, cause = Reason.TIMEOUT, stop.message
        else:
            reason = Reason.EXECUTION_CANCELLED
            cause = f"cancelled by {stop.by}: {stop.message}" if stop else "cancelled"
        handle: ProcessHandle | None = st.get("handle")
        ended = now_ms()
        started_at = st.get("started_at")
        duration = ended - started_at if started_at else None
        ran = bool(st.get("attempt_open"))
        timed_out: Outcome | None = st.get("timed_out")
        if timed_out is not None:  # its own timeout came first; the stop took the retry away
            details = f"attempt {st['attempt']} had timed out ({_stop_details(handle)}), no retry"
        elif ran:
            details = _stop_details(handle)
        elif st["attempt"] > 0:
            details = f"it was waiting before attempt {st['attempt'] + 1}"
            handle = None  # the last attempt had already ended on its own
        else:
            details = "it had not started"
        message = f"Task cancelled due to execution cancellation ({cause}); {details}"
        if reason == Reason.TIMEOUT:
            message = f"Task cancelled due to execution timeout ({cause}); {details}"
        error = {
            "message": message,
            "type": "Cancelled",
            "reason_code": reason.value,
            "cancelled_by": stop.by if stop else "system",
            "signal": handle.signal_sent if handle else None,
            "exit_code": handle.exit_code if handle else None,
            "stderr_tail": list(handle.stderr_tail) if handle else [],
            "attempt": st["attempt"],
        }
        await run.log(
            LogLevel.WARN, "worker", message, task_id=task_id, attempt=st["attempt"], reason_code=reason.value,
            cancelled_by=error["cancelled_by"], signal=error["signal"], exit_code=error["exit_code"],
        )
        attempt_write = None
        if timed_out is not None:
            attempt_error = timed_out.error or {}
            attempt_write = AttemptWrite(
                st["attempt"], AttemptState.TIMED_OUT.value, st["attempt_started"], Reason.TIMEOUT.value,
                str(attempt_error.get("message")), exit_code=timed_out.exit_code, signal=attempt_error.get("signal"),
                pid=_pid(st), ended_at=ended,
            )
        elif ran:
            attempt_write = AttemptWrite(
                st["attempt"], AttemptState.CANCELLED.value, st["attempt_started"], reason.value, message,
                exit_code=error["exit_code"], signal=error["signal"], pid=_pid(st), ended_at=ended,
            )
        fields: dict[str, Any] = {"error": run.masker.mask_value(error), "ended_at": ended}
        if duration is not None:
            fields["duration_ms"] = duration
        try:
            await run.commit(
                StateChange(
                    run.execution_id, State.CANCELLED, reason.value, message, task_id=task_id,
                    fields=fields, attempt=attempt_write, at=ended,
                )
            )
        except IllegalTransition:  # it reached a terminal state just before the cancel landed
            return
        result.state, result.reason_code, result.error, result.duration_ms = State.CANCELLED, reason.value, error, duration
        run.progress(ProgressEvent(run.execution_id, task_id, State.CANCELLED, reason.value, message, st["attempt"]))


def _pid(st: dict[str, Any]) -> int | None:
    handle = st.get("handle")
    return handle.pid if handle is not None else None


def _granted_secrets(inputs: Any, secrets: dict[str, str]) -> dict[str, str]:
    """A plugin receives only the secrets its task's inputs name, as a GitHub Actions step does."""
    try:
        names = secret_names(dict(inputs))
    except TemplateError:
        return {}  # rendering reports the broken template and fails the task
    return {name: secrets[name] for name in names if name in secrets}


#: a log line's copy of a task's inputs or outputs is at most this much JSON; the task run
#: keeps the whole value (`inspect --task ID --show-inputs`), and a 16 MB output repeated in
#: every attempt's log line would multiply the database and every `logs --jsonl` line
LOG_VALUE_MAX_BYTES = 64 * 1024


def _bounded(value: Any, execution_id: str, task_id: str) -> Any:
    size = len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass"))
    if size <= LOG_VALUE_MAX_BYTES:
        return value
    return {
        "_truncated": True, "bytes": size,
        "see": f"kestra-trio execution inspect {execution_id} --task {task_id} --show-inputs --no-truncate",
    }
