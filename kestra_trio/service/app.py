"""The composition root: everything a process opens ONCE, as nursery services.

    open_service(config)
    └─ database (one writer connection)
        └─ root nursery
            ├─ LogCollector.run               outer: drains after everything else has stopped
            ├─ GroupReaper watchdog           no plugin group outlives the process, even on SIGKILL
            │  (lost-engine recovery runs here, once, before anything is claimed)
            └─ services nursery               `Service.start` / `start_soon` add more (HTTP, triggers)
                ├─ signal watcher             SIGINT / SIGTERM / SIGHUP → stop; a second one → SIGKILL now
                ├─ cancel watcher             `execution cancel` rows → the running execution stops
                ├─ retention                  at start, then every 24 h (when configured)
                └─ Worker                     claim → run_claimed → release, one nursery per execution

`kestra-trio run` is `open_service` + `Service.run` (enqueue on the worker's private queue,
wait); a server opens the same service with `queues=(DEFAULT_QUEUE,)` and adds its listener
and triggers with `Service.start`. Closing the service (leaving the `async with`) stops what
still runs with a recorded reason, waits for it, then drains the collector and the watchdog.
"""

from __future__ import annotations

import contextlib
import secrets as _secrets
import signal
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

from kestra_trio.engine.context import EngineOptions, EngineServices, ExecutionResult, RuntimeChooser, StopRequest
from kestra_trio.engine.progress import ProgressEvent
from kestra_trio.engine.runner import bound_database_waits, ms
from kestra_trio.engine.runtimes import RuntimeFactory
from kestra_trio.engine.slots import TaskSlots
from kestra_trio.errors import only_leaf
from kestra_trio.model.defaults import default_task_timeout
from kestra_trio.model.workflow import Workflow
from kestra_trio.observability.collector import LogCollector, report_to_stderr
from kestra_trio.observability.records import LogEntry, LogLevel
from kestra_trio.plugin_runtime.reaper import open_group_reaper
from kestra_trio.secrets.masking import Masker
from kestra_trio.secrets.providers import resolve_secrets
from kestra_trio.service.recovery import recover_lost_executions
from kestra_trio.service.worker import PreparedRun, Worker
from kestra_trio.state.states import Reason, State
from kestra_trio.storage.audit import AuditStore
from kestra_trio.storage.ballast import hold_ballast
from kestra_trio.storage.db import Database, open_database
from kestra_trio.storage.executions import ExecutionStore, NewExecution, NewTaskRun
from kestra_trio.storage.logs import LogStore
from kestra_trio.storage.ports import WorkerIdentity
from kestra_trio.storage.queue import SqliteQueue
from kestra_trio.storage.rows import ExecutionRow
from kestra_trio.storage.workflows import WorkflowStore
from kestra_trio.storage.write_retry import WriteRetry

#: signals that stop the service's executions (recorded CANCELLED by user); SIGHUP: the terminal closed
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


#: parsed workflow revisions a service keeps for the executions of shared queues
WORKFLOW_CACHE_SIZE = 64


def new_execution_id() -> str:
    return _secrets.token_hex(8)


@dataclass
class ServiceConfig:
    """What differs between `kestra-trio run`, the Python API, a server and the test harness."""

    db_path: str | Path | None
    registry: Any  # PluginRegistry
    options: EngineOptions = field(default_factory=EngineOptions)
    #: shared queues the worker claims from besides its private one (a server: (DEFAULT_QUEUE,))
    queues: Sequence[str] = ()
    #: run retention at start and every 24 h, keeping this many days (None: no retention here)
    retention_days: int | None = None
    #: a server: the first stop signal begins a drain (`Service.drain`) instead of stopping every
    #: execution at once, and a second one forces the stop (`Service.forced_by`)
    drain_on_signal: bool = False
    #: where warnings go (an oversized table after the first cleanup)
    on_warning: Callable[[str], None] = field(default=lambda message: report_to_stderr(f"warning: {message}"))
    #: wraps the runtime chooser (the test harness: mocked tasks, `core/util.sleep` on the test clock,
    #: real time while a plugin process runs)
    wrap_runtimes: Callable[[RuntimeChooser], RuntimeChooser] | None = None


class Service:
    """The running parts of one process. Build it with `open_service`."""

    def __init__(self, config: ServiceConfig, db: Database, identity: WorkerIdentity) -> None:
        self.config = config
        self.options = config.options
        self.db = db
        self.identity = identity
        self.registry = config.registry
        self.store = ExecutionStore(db)
        self.queue = SqliteQueue(db)
        self.workflows = WorkflowStore(db)
        self.audit_store = AuditStore(db)
        #: the process's one retry policy for refused database writes: one outage report, one
        #: give-up deadline (set when the process stops)
        self.writes = WriteRetry(on_error=config.options.on_error)
        self.collector = LogCollector(
            LogStore(db), linger=config.options.collector_linger, on_error=config.options.on_error,
            writes=self.writes, close_grace=config.options.close_grace,
            # a process that runs only its own executions reports their losses in their results
            report_unrecorded_loss=bool(config.queues),
        )
        self.force_kill = trio.Event()
        self.slots = TaskSlots(max(1, config.options.max_parallel))
        #: a bad KESTRA_TRIO_DEFAULT_TASK_TIMEOUT stops the process here, before anything is created
        self.default_task_timeout = default_task_timeout(config.options.environ)
        #: runs pinned to this process, handed over in memory by `enqueue`, by execution id
        self._prepared: dict[str, PreparedRun] = {}
        #: parsed workflows by (id, revision), the most recently used last
        self._workflows: dict[tuple[str, int], Workflow] = {}
        self._log_send = self.collector.sender()
        self._services: trio.Nursery | None = None
        self.worker: Worker | None = None
        #: set once a stop signal arrived (the server waits on it to begin its drain)
        self.stopping = trio.Event()
        #: the signal that forced a drain to stop at once (a server exits 128 + it)
        self.forced_by: signal.Signals | None = None

    # ------------------------------------------------------------------ what callers use
    async def enqueue(
        self,
        workflow: Workflow,
        inputs: Mapping[str, Any],
        *,
        trigger_type: str = "manual",
        workflow_path: str | None = None,
        workflow_revision: int | None = None,
        queue: str | None = None,
        execution_id: str | None = None,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        trigger: Mapping[str, Any] | None = None,
    ) -> str:
        """Create the execution QUEUED and wake the worker; returns its id.

        `queue` None pins it to this process (its private queue): this process runs it, and if
        the process dies first, recovery marks it ENGINE_LOST. A shared queue (DEFAULT_QUEUE)
        leaves it to any worker serving that queue; it survives a kill -9 of everyone.
        `trigger` is what started it beyond `trigger_type` (`{{ trigger.* }}` in templates):
        stored masked with the execution.
        """
        execution_id = execution_id or new_execution_id()
        on_progress = on_progress or self.options.on_progress
        pinned = queue is None
        secrets = resolve_secrets(self.options.environ)
        masker = Masker(secrets.values())
        new = NewExecution(
            id=execution_id,
            workflow_id=workflow.id,
            namespace=workflow.namespace,
            trigger_type=trigger_type,
            inputs=masker.mask_value(dict(inputs)),
            workflow_path=workflow_path,
            timeout_ms=ms(workflow.timeout),
            engine_pid=self.identity.pid if pinned else None,
            engine_host=self.identity.host if pinned else None,
            queue=self.identity.private_queue if pinned else queue,  # type: ignore[arg-type]
            workflow_revision=workflow_revision,
            trigger=None if trigger is None else masker.mask_value({**trigger, "type": trigger_type}),
        )
        tasks = [
            NewTaskRun(
                task_id=spec.id, position=index, type=spec.type, needs=spec.needs,
                max_attempts=spec.retry.max_attempts,
                timeout_ms=ms(spec.timeout if spec.timeout is not None else self.default_task_timeout),
            )
            for index, spec in enumerate(workflow.tasks)
        ]
        assert self.worker is not None, "enqueue inside `async with open_service(...)`"
        if pinned:  # this process runs it: hand the parsed workflow and the inputs over in memory
            self._prepared[execution_id] = PreparedRun(
                workflow, dict(inputs), secrets, on_progress, {**(trigger or {}), "type": trigger_type}
            )
            self.worker.expect(execution_id)
        elif workflow_revision is not None:
            self._remember(workflow, workflow_revision)
        try:
            await self.queue.enqueue(new, tasks)
        except BaseException:
            self._prepared.pop(execution_id, None)
            raise
        self.collector.set_masker(execution_id, masker)
        self._log_send.send_always(
            LogEntry(
                execution_id, None, LogLevel.INFO, "scheduler", f"Execution created for workflow {workflow.id}",
                {"workflow_id": workflow.id, "trigger_type": trigger_type, "task_count": len(workflow.tasks),
                 **({"workflow_revision": workflow_revision} if workflow_revision is not None else {})},
            )
        )
        if on_progress is not None:
            on_progress(ProgressEvent.for_execution(execution_id, State.QUEUED, "CREATED", None))
        self.worker.poke()
        return execution_id

    async def wait(self, execution_id: str) -> ExecutionResult:
        """The result of an execution enqueued pinned to this process (`queue=None`), once it has ended."""
        assert self.worker is not None
        return await self.worker.wait(execution_id)

    async def run(self, workflow: Workflow, inputs: Mapping[str, Any], **enqueue_options: Any) -> ExecutionResult:
        """Enqueue one execution pinned to this process and wait for its end."""
        return await self.wait(await self.enqueue(workflow, inputs, **enqueue_options))

    async def stop(self, request: StopRequest) -> None:
        """Stop every running execution with `request` (and any claimed later); claim no more shared work."""
        assert self.worker is not None
        self.stopping.set()
        await self.worker.stop_all(request)  # ("Stopping …" is said first)
        bound_database_waits(self.writes, self.options)

    async def drain(self, timeout: float) -> None:
        """A server's shutdown: claim nothing more, let running executions finish within `timeout`
        seconds, then stop what still runs (reason `server shutdown`) and wait for it. Executions
        still QUEUED stay queued for the next start."""
        assert self.worker is not None
        self.stopping.set()
        self.worker.stop_claiming()
        with trio.move_on_after(timeout):
            await self.worker.wait_idle()
        if self.worker.running:
            await self.worker.stop_all(StopRequest(Reason.EXECUTION_CANCELLED, "system", "server shutdown"))
            bound_database_waits(self.writes, self.options)  # a database refusing writes cannot hold the exit
        await self.worker.wait_idle()

    def start_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run another long-lived part of the service (triggers, an HTTP listener) in its nursery."""
        assert self._services is not None
        self._services.start_soon(fn, *args)

    async def start(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`nursery.start` in the service's nursery: returns once `fn` says it is ready."""
        assert self._services is not None
        return await self._services.start(fn, *args)

    # ------------------------------------------------------------------ its own services
    async def _prepare(self, row: ExecutionRow) -> PreparedRun:
        prepared = self._prepared.pop(row.id, None)
        if prepared is not None:
            return prepared
        return await self._prepare_from_registry(row)

    def _remember(self, workflow: Workflow, revision: int) -> None:
        key = (workflow.id, revision)
        self._workflows.pop(key, None)
        self._workflows[key] = workflow
        while len(self._workflows) > WORKFLOW_CACHE_SIZE:
            del self._workflows[next(iter(self._workflows))]

    async def workflow_at(self, workflow_id: str, revision: int) -> Workflow:
        """A registry revision, parsed (once per revision: the most recently used are kept).

        Raises:
            LookupError: the registry has no such revision.
            WorkflowInvalid: its text no longer loads (e.g. a plugin it uses is gone).
        """
        from kestra_trio.model.loading import load_workflow_text

        workflow = self._workflows.get((workflow_id, revision))
        if workflow is None:
            stored = await self.workflows.revision(workflow_id, revision)
            if stored is None or stored.source is None:
                raise LookupError(f"workflow {workflow_id} revision {revision} is not in the registry")
            workflow = load_workflow_text(
                stored.source, f"{workflow_id}@{revision}", catalog=self.registry, source_path=stored.source_path,
            )
        self._remember(workflow, revision)  # (the most recently used stays)
        return workflow

    async def _prepare_from_registry(self, row: ExecutionRow) -> PreparedRun:
        """An execution from a shared queue: the exact workflow revision it was enqueued with,
        and its stored inputs."""
        if row.workflow_revision is None:
            raise LookupError(f"execution {row.id} names no workflow revision to run")
        workflow = await self.workflow_at(row.workflow_id, row.workflow_revision)
        return PreparedRun(workflow, dict(row.inputs or {}), resolve_secrets(self.options.environ))

    async def _watch_signals(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Ctrl+C / SIGTERM / SIGHUP become a recorded stop; another one skips the kill grace."""
        with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            task_status.started()
            assert self.worker is not None
            async for signum in signals:
                name = signal.Signals(signum).name
                if self.config.drain_on_signal:
                    await self._drain_signal(signal.Signals(signum))
                    continue
                running = [run for run in self.worker.running.values() if run is not None]
                # a signal to a process already stopping (a second signal, or the first one
                # while an `execution cancel` or a timeout is being carried out) skips the grace
                forcing = self.stopping.is_set() or any(run.stop_request is not None for run in running)
                if not self.stopping.is_set():
                    await self.stop(StopRequest(Reason.EXECUTION_CANCELLED, "user", f"received {name}", signal=int(signum)))
                if forcing and not self.force_kill.is_set():
                    self.force_kill.set()
                    for run in running:
                        await run.forcing(name)

    async def _drain_signal(self, signum: signal.Signals) -> None:
        """A server's signals: the first begins the drain (whoever waits on `stopping` runs it),
        the next stops every execution now and skips the kill grace."""
        assert self.worker is not None
        if not self.stopping.is_set():
            self.stopping.set()
            self.worker.stop_claiming()
            return
        if self.forced_by is not None:
            return
        self.forced_by = signum
        await self.worker.stop_all(StopRequest(
            Reason.EXECUTION_CANCELLED, "system", f"server shutdown (forced by a second {signum.name})", signal=int(signum)
        ))
        bound_database_waits(self.writes, self.options)
        self.force_kill.set()
        for run in [run for run in self.worker.running.values() if run is not None]:
            await run.forcing(signum.name)

    async def _watch_cancel_requests(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """One query per poll for every execution this process runs (not one per execution)."""
        assert self.worker is not None
        task_status.started()
        while True:
            await trio.sleep(self.options.cancel_poll_interval)
            running = [eid for eid, run in self.worker.running.items() if run is not None]
            if not running:
                continue
            try:  # reads, then the stop: a database that refuses writes cannot keep a cancel waiting
                wanted = await self.store.pending_cancels(running)
                for execution_id in wanted:
                    requests = await self.store.pending_cancel_requests(execution_id)
                    run = self.worker.running.get(execution_id)
                    if requests and run is not None:
                        first = requests[0]
                        run.stop(
                            StopRequest(Reason.EXECUTION_CANCELLED, first.requested_by, first.reason or "cancelled by request")
                        )
                    if requests:
                        with contextlib.suppress(Exception):  # refused: the stop stands, the mark waits
                            await self.store.mark_cancel_requests_handled(execution_id, [r.id for r in requests])
            except Exception as exc:  # a locked or broken db must not kill the run
                self.options.on_error(f"cannot read cancel requests ({exc})")

    async def _close(self) -> None:
        """Leaving the service: what still runs is stopped with a reason and waited for."""
        assert self.worker is not None
        if self.worker.running:
            bound_database_waits(self.writes, self.options)
            await self.worker.stop_all(StopRequest(Reason.EXECUTION_CANCELLED, "system", "the service is shutting down"))
        await self.worker.wait_idle()


@contextlib.asynccontextmanager
async def open_service(config: ServiceConfig, *, db: Database | None = None) -> AsyncIterator[Service]:
    """Open the database (or use `db`, which the caller keeps open) and start every service
    part; yields once the worker is ready.

    An error raised in the `async with` body (a disabled workflow, Ctrl+C without signal
    handling) comes out as itself, not wrapped in the nurseries' ExceptionGroups."""
    try:
        async with _open_service(config, db) as service:
            yield service
    except BaseExceptionGroup as group:
        leaf = only_leaf(group)
        if leaf is None:
            raise
        raise leaf from None


@contextlib.asynccontextmanager
async def _open_service(config: ServiceConfig, db: Database | None) -> AsyncIterator[Service]:
    async with contextlib.AsyncExitStack() as stack:
        if db is None:
            db = await stack.enter_async_context(open_database(config.db_path))
        service = Service(config, db, WorkerIdentity())
        options = config.options
        # room for the last writes (loss counts, final states) if the disk fills up
        service.writes.on_give_up = stack.enter_context(hold_ballast(db.path)).release
        async with trio.open_nursery() as root:
            await root.start(service.collector.run)
            try:
                async with open_group_reaper() as reaper:
                    runtimes: RuntimeChooser = RuntimeFactory(
                        reaper=reaper, kill_grace=options.kill_grace, force_kill=service.force_kill,
                        environ=options.environ,
                    )
                    if config.wrap_runtimes is not None:
                        runtimes = config.wrap_runtimes(runtimes)
                    engine = EngineServices(
                        store=service.store, collector=service.collector, registry=config.registry,
                        runtime_for=runtimes, slots=service.slots, force_kill=service.force_kill,
                        options=options, writes=service.writes, bound_writes_on_stop=not config.queues,
                        default_task_timeout=service.default_task_timeout,
                    )
                    service.worker = Worker(
                        engine, service.queue, service.audit_store, service.identity,
                        queues=[service.identity.private_queue, *config.queues], prepare=service._prepare,
                    )
                    async with trio.open_nursery() as services:
                        service._services = services
                        if options.handle_signals:
                            await services.start(service._watch_signals)
                        await recover_lost_executions(service.store, LogStore(db))
                        await services.start(service._watch_cancel_requests)
                        if config.retention_days is not None:
                            services.start_soon(_retention, db, config.retention_days, config.on_warning)
                        await services.start(service.worker.run)
                        try:
                            yield service
                        finally:
                            # bounded: each task gets its kill grace, then its pipes are drained
                            with trio.CancelScope(shield=True) as closing:
                                closing.deadline = trio.current_time() + options.kill_grace + options.close_grace + 60
                                await service._close()
                            services.cancel_scope.cancel()
            finally:
                service._log_send.close()
                service.collector.close()


async def run_execution(
    workflow: Workflow,
    inputs: Mapping[str, Any],
    *,
    db: Database,
    registry: Any,
    options: EngineOptions | None = None,
    workflow_revision: int | None = None,
) -> ExecutionResult:
    """One execution in a service of its own (what `kestra-trio run` does, without the view)."""
    options = options or EngineOptions()
    async with open_service(ServiceConfig(db_path=None, registry=registry, options=options), db=db) as service:
        return await service.run(
            workflow, inputs, workflow_path=workflow.source_path, workflow_revision=workflow_revision
        )


async def _retention(db: Database, keep_days: int, on_warning: Callable[[str], None]) -> None:
    """Retention at start and every 24 h, beside the executions (it never delays or fails one).
    After the first cleanup, oversized tables get a warning."""
    from kestra_trio.retention.purge import run_retention_service, size_warnings, table_stats

    first_done = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(run_retention_service, db, retention_days=keep_days, on_report=lambda _: first_done.set())
        )
        await first_done.wait()
        try:
            for warning in size_warnings(await table_stats(db), retention_days=keep_days):
                on_warning(warning)
        except Exception as exc:
            on_warning(f"cannot measure the database size ({exc})")
