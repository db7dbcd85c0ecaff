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

from kestra_trio.engine.progress import ProgressEvent
from kestra_trio.engine.slots import TaskSlots
from kestra_trio.model.defaults import DEFAULT_FOR_EACH_MAX_ITEMS
from kestra_trio.model.templates import NO_ITEM, TemplateContext, render
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


@dataclass
class EngineOptions:
    """Settings of the engine in one process (`kestra-trio run` flags, a server's config)."""

    max_parallel: int = 8  # running tasks, across every execution of the process
    kill_grace: float = 5.0
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
    #: tasks that failed with `allow_failure: true` ("1 failure allowed")
    allowed_failures: list[str] = field(default_factory=list)
    #: the workflow's `outputs:`, rendered at its end (masked)
    outputs: dict[str, Any] | None = None


class RuntimeChooser(Protocol):
    """The seam where a runtime is picked per task: trusted process, bubblewrap or Docker
    (`engine.runtimes.RuntimeFactory`)."""

    def __call__(self, run: RunContext, policy: SandboxPolicy | None) -> Runtime: ...


class SubflowLauncher(Protocol):
    """How a `core/flow.subflow` task starts and follows its child execution (the service's
    enqueue and worker, see `service.subflows`); `start` raises KestraTrioError when it cannot."""

    async def start(self, run: RunContext, task_id: str, call: Any) -> str: ...

    async def wait(self, child_id: str) -> ExecutionResult: ...

    async def stop(self, child_id: str, request: StopRequest) -> None: ...


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
    #: for tasks without `timeout:` (None: no limit; KESTRA_TRIO_DEFAULT_TASK_TIMEOUT, read once)
    default_task_timeout: float | None = None
    #: how many items one for_each may run (KESTRA_TRIO_FOR_EACH_MAX_ITEMS, read once)
    for_each_max_items: int = DEFAULT_FOR_EACH_MAX_ITEMS
    #: runs `core/flow.subflow` tasks (None: they fail, e.g. in a bare engine without a service)
    subflows: SubflowLauncher | None = None


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
        self.on_progress = on_progress
        #: set before the execution scope is cancelled, so everything cancelled can say why
        self.stop_request: StopRequest | None = None
        self.workdir = Path(workflow.source_path).resolve().parent if workflow.source_path else None
        self.started_at = now_ms() if started_at is None else started_at
        self.workflow_revision = workflow_revision
        self.trigger = dict(trigger or {"type": "manual"})
        self._variables: dict[str, Any] | None = None
        #: `{{ execution.error }}` in errors:/finally: tasks: which task failed and why
        self.execution_error: dict[str, Any] | None = None

    def task_timeout(self, spec: TaskSpec) -> float | None:
        return spec.timeout if spec.timeout is not None else self.services.default_task_timeout

    def template_context(
        self, task_id: str, attempt: int, outputs: Mapping[str, Any], *, item: Any = NO_ITEM,
        item_index: int | None = None,
    ) -> TemplateContext:
        """What a task's templates see (`item`: a for_each iteration's)."""
        workflow = self.workflow
        execution: dict[str, Any] = {"id": self.execution_id, "started_at": iso_ms(self.started_at)}
        if self.execution_error is not None:
            execution["error"] = self.execution_error
        about = {"id": workflow.id, "namespace": workflow.namespace, "revision": self.workflow_revision}
        if self._variables is None:  # rendered once, at first use
            base = TemplateContext(inputs=self.inputs, execution=execution, trigger=self.trigger, workflow=about)
            self._variables = render(dict(workflow.variables), base)
        return TemplateContext(
            inputs=self.inputs, outputs=outputs, secret=self.secrets.get, execution=execution,
            workflow=about, task={"id": task_id, "attempt": attempt}, trigger=self.trigger,
            variables=self._variables, item=item, item_index=item_index,
        )

    async def log(
        self, level: LogLevel, source: str, message: str, *, task_id: str | None = None, **metadata: Any
    ) -> None:
        await self.log_send.send(LogEntry(self.execution_id, task_id, level, source, message, metadata))

    def progress(self, event: ProgressEvent) -> None:
        if self.on_progress is not None:
            self.on_progress(event)

    async def apply(self, *changes: StateChange) -> None:
        results = await self.store.apply(*changes)
        for result in results:
            if result.audit_failed:
                self.options.on_error(f"audit write failed (the state change was kept): {result.audit_failed}")
