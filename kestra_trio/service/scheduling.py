"""The scheduling half of a server, started as ONE service part:

    await service.start(partial(run_scheduling, service, workflows_dir=DIR))

    run_scheduling
    ├─ WorkflowFolder     --workflows DIR applied at start (before `started`), then on change
    ├─ CronScheduler      cron triggers of enabled workflows → QUEUED executions on the shared queue
    ├─ FlowDispatcher     ends of executions → the workflows that follow them
    ├─ lost-engine watch  every WATCHDOG_SECONDS: executions whose engine died → FAILED [ENGINE_LOST]
    └─ fire pruning       with retention: trigger_fires rows older than retention_days, daily

Every fire is recorded in the transaction that creates its execution, keyed by workflow,
trigger and scheduled time (cron) or upstream execution (flow): a restart, a kill -9 or a
second server on the same database never fires anything twice. Executions go to the shared
queue (the service must serve it: `ServiceConfig(queues=(DEFAULT_QUEUE,))`), so a kill -9
loses none: the next start's worker runs them. Once the service is stopping (SIGTERM), no
trigger fires any more. Retention runs in the service itself (`ServiceConfig.retention_days`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import trio

from kestra_trio.errors import InputError
from kestra_trio.model.workflow import CronTrigger, FlowTrigger
from kestra_trio.service.app import Service
from kestra_trio.service.folder import WorkflowFolder
from kestra_trio.service.recovery import recover_lost_executions
from kestra_trio.service.triggers.catalog import ActiveWorkflow, TriggerCatalog
from kestra_trio.service.triggers.cron import CronScheduler, schedule_key, scheduled_iso
from kestra_trio.service.triggers.fire import fire
from kestra_trio.service.triggers.flow import FlowDispatcher
from kestra_trio.storage.executions import DEFAULT_QUEUE
from kestra_trio.storage.logs import LogStore
from kestra_trio.storage.triggers import ExecutionEnd, TriggerFire, TriggerStore

#: how often executions of engines that died since the start are looked for
WATCHDOG_SECONDS = 30.0
#: how often fire records older than the retention are dropped
RETENTION_SECONDS = 24 * 3600.0


async def run_scheduling(
    service: Service,
    *,
    workflows_dir: Path | None = None,
    wall: Callable[[], float] = time.time,
    on_info: Callable[[str], None] = lambda _: None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Triggers, the --workflows folder and the lost-engine watchdog; `started` once the folder
    is applied. Ends (quietly) when the service starts stopping."""
    if DEFAULT_QUEUE not in service.config.queues:
        raise ValueError("run_scheduling needs a service that serves the shared queue (queues=(DEFAULT_QUEUE,))")
    on_error = service.options.on_error
    catalog = TriggerCatalog(service.workflows, service.registry, on_error)
    store = TriggerStore(service.db)
    cron = CronScheduler(
        load=catalog.load, states=store, fire=partial(_fire_cron, service, store, on_error), on_error=on_error, wall=wall,
    )
    flow = FlowDispatcher(load=catalog.load, store=store, fire=partial(_fire_flow, service, on_error), on_error=on_error)
    async with trio.open_nursery() as nursery:
        if workflows_dir is not None:
            folder = WorkflowFolder(
                service.workflows, service.registry, Path(workflows_dir), on_error=on_error, on_info=on_info,
                on_change=cron.poke,
            )
            await nursery.start(folder.run)
        await nursery.start(cron.run)
        await nursery.start(flow.run)
        nursery.start_soon(watch_lost_engines, service)
        if service.config.retention_days is not None:
            nursery.start_soon(prune_fires, store, service.config.retention_days, wall, on_error)
        task_status.started()
        await service.stopping.wait()  # SIGTERM / shutdown: nothing fires any more
        nursery.cancel_scope.cancel()


async def _fire_cron(service: Service, store: TriggerStore, on_error: Callable[[str], None],
                     item: ActiveWorkflow, trigger: CronTrigger, at: int) -> bool:
    record = TriggerFire(
        item.workflow.id, trigger.id, "cron", str(at), scheduled_at=at, schedule=schedule_key(trigger),
    )
    try:
        return await fire(service, item, trigger, {"scheduled_at": scheduled_iso(trigger, at)}, record) is not None
    except InputError as exc:  # reported once: the fire time counts as handled
        on_error(f"workflow {item.workflow.id}: cron fire at {scheduled_iso(trigger, at)} skipped: {exc}")
        await store.set_cron_state(item.workflow.id, trigger.id, schedule_key(trigger), at)
        return False


async def _fire_flow(service: Service, on_error: Callable[[str], None],
                     item: ActiveWorkflow, trigger: FlowTrigger, end: ExecutionEnd) -> bool:
    record = TriggerFire(item.workflow.id, trigger.id, "flow", end.execution_id, upstream_execution_id=end.execution_id)
    data = {"execution_id": end.execution_id, "workflow": end.workflow_id, "namespace": end.namespace, "state": end.state}
    try:
        return await fire(service, item, trigger, data, record) is not None
    except InputError as exc:
        on_error(f"workflow {item.workflow.id}: flow trigger for execution {end.execution_id} skipped: {exc}")
        return False


async def watch_lost_engines(service: Service, interval: float = WATCHDOG_SECONDS) -> None:
    """Recovery ran once at start; this finds engines that die while the server runs (a
    `kestra-trio run` killed with -9, a worker of another server on this host)."""
    logs = LogStore(service.db)
    while True:
        await trio.sleep(interval)
        try:
            await recover_lost_executions(service.store, logs)
        except Exception as exc:
            service.options.on_error(f"lost-engine watchdog: {exc}")


async def prune_fires(store: TriggerStore, keep_days: int, wall: Callable[[], float],
                      on_error: Callable[[str], None]) -> None:
    """The fire records follow retention (an every-second trigger makes 86,400 a day)."""
    while True:
        try:
            await store.prune_fires(int((wall() - keep_days * 86_400) * 1000))
        except Exception as exc:
            on_error(f"cannot prune trigger fires ({exc})")
        await trio.sleep(RETENTION_SECONDS)
