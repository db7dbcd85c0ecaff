"""The engine's shared values: options, stop requests, results, and what one execution shares.

Every other engine module imports this one and nothing imports them back, so the runner,
the scheduler and the attempts form a line, not a circle:

    runner → scheduler → attempt → context
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import trio

from kestra_trio.config import DEFAULT_CLOSE_GRACE
from kestra_trio.engine.progress import ProgressEvent
from kestra_trio.engine.slots import TaskSlots
from kestra_trio.model.templates import TemplateContext, render
from kestra_trio.model.workflow import TaskSpec, Workflow
from kestra_trio.observability.audit import AuditLogger
from kestra_trio.observability.collector import LogCollector, report_to_stderr
from kestra_trio.observability.records import LogEntry, LogLevel, iso_ms, now_ms
from kestra_trio.plugin_runtime.runtime import Runtime
from kestra_trio.plugin_runtime.sandbox import SandboxPolicy
from kestra_trio.secrets.masking import Masker
from kestra_trio.state.states import Reason, State
from kestra_trio.storage.executions import StateChange
from kestra_trio.storage.ports import ExecutionRepo
from kestra_trio.storage.write_retry import WriteRetry, is_write_refused


@dataclass
class EngineOptions:
    """Settings of the engine in one process (`kestra-trio run` flags, a server's config)."""

    max_parallel: int = 8  # running tasks, across every execution of the process
    kill_grace: float = 5.0
    #: after a stop, how long refused database writes are retried once the tasks are stopped
    close_grace: float = DEFAULT_CLOSE_GRACE
    cancel_poll_interval: float = 0.2
    handle_signals: bool = True
    environ: Mapping[str, str] | None = None  # where secrets are read from (default: os.environ)
    #: who watches executions that `enqueue` is not given a watcher for
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
    """One task's record: the scheduler creates it, the task's attempts fill it in."""

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
    workflow_revision: int | None = None
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


class RuntimeChooser(Protocol):
    """The seam where a runtime is picked per task: trusted process, bubblewrap or Docker
    (`engine.runtimes.RuntimeFactory`)."""

    def __call__(self, run: RunContext, policy: SandboxPolicy | None) -> Runtime: ...


@dataclass
class EngineServices:
    """What a process opens once and every execution it runs shares (see `service.app`)."""

    store: ExecutionRepo
    collector: LogCollector
    registry: Any  # PluginRegistry: resolve(type) -> (manifest, action)
    runtime_for: RuntimeChooser
    slots: TaskSlots  # the process-wide limit on running tasks
    force_kill: trio.Event  # set by a second stop signal: running plugins get SIGKILL now
    options: EngineOptions
    #: the process's one retry policy for refused database writes (logs, state changes, audit)
    writes: WriteRetry = field(default_factory=WriteRetry)
    #: True when the process runs only executions pinned to it (`kestra-trio run`): an
    #: execution's own stop (its timeout, `execution cancel`) then also bounds the process's
    #: waits for the database. A server's do not: its other executions keep waiting, whole.
    bound_writes_on_stop: bool = False
    #: for tasks without `timeout:` (None: no limit; KESTRA_TRIO_DEFAULT_TASK_TIMEOUT, read once)
    default_task_timeout: float | None = None


class RunContext:
    """What one execution's scheduler and attempts share: ids, inputs, the log channel, stop state."""

    def __init__(
        self,
        services: EngineServices,
        execution_id: str,
        workflow: Workflow,
        inputs: Mapping[str, Any],
        *,
        secrets: Mapping[str, str],
        audit: AuditLogger,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        started_at: int | None = None,
        workflow_revision: int | None = None,
        trigger: Mapping[str, Any] | None = None,
    ) -> None:
        self.services = services
        self.execution_id = execution_id
        self.workflow = workflow
        self.inputs = dict(inputs)
        self.secrets = dict(secrets)
        self.masker = Masker(self.secrets.values())
        self.store = services.store
        self.audit = audit
        self.collector = services.collector
        self.registry = services.registry
        self.options = services.options
        self.log_send = services.collector.sender()
        self.writes = services.writes
        #: state changes the database refused until the process gave up waiting: they go
        #: with the execution's final state
        self.unwritten_changes: list[StateChange] = []
        self.on_progress = on_progress
        #: set before the execution scope is cancelled, so everything cancelled can say why
        self.stop_request: StopRequest | None = None
        self.workdir = Path(workflow.source_path).resolve().parent if workflow.source_path else None
        self.started_at = now_ms() if started_at is None else started_at
        self.workflow_revision = workflow_revision
        self.trigger = dict(trigger or {"type": "manual"})
        self._variables: dict[str, Any] | None = None

    def task_timeout(self, spec: TaskSpec) -> float | None:
        return spec.timeout if spec.timeout is not None else self.services.default_task_timeout

    def template_context(self, task_id: str, attempt: int, outputs: Mapping[str, Any]) -> TemplateContext:
        """What a task's templates see."""
        workflow = self.workflow
        execution = {"id": self.execution_id, "started_at": iso_ms(self.started_at)}
        about = {"id": workflow.id, "namespace": workflow.namespace, "revision": self.workflow_revision}
        if self._variables is None:  # rendered once, at first use
            base = TemplateContext(inputs=self.inputs, execution=execution, trigger=self.trigger, workflow=about)
            self._variables = render(dict(workflow.variables), base)
        return TemplateContext(
            inputs=self.inputs, outputs=outputs, secret=self.secrets.get, execution=execution,
            workflow=about, task={"id": task_id, "attempt": attempt}, trigger=self.trigger,
            variables=self._variables,
        )

    async def log(
        self, level: LogLevel, source: str, message: str, *, task_id: str | None = None, **metadata: Any
    ) -> None:
        """An engine line: never waits behind plugin output (see `LogSender.send_always`)."""
        self.log_send.send_always(LogEntry(self.execution_id, task_id, level, source, message, metadata))

    def progress(self, event: ProgressEvent) -> None:
        if self.on_progress is not None:
            self.on_progress(event)

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
