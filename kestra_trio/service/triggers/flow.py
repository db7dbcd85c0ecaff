"""Flow triggers: start a workflow when an execution of another one ends in given states.

The database records every end (`execution_ends`, written by an SQL trigger in the very
transaction that ends the execution, whoever ends it). The dispatcher reads them in order,
fires every matching trigger — each fire is keyed by (workflow, trigger, upstream execution),
so a restart between a fire and the consume fires nothing twice — then consumes them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from kestra_trio.model.workflow import FlowTrigger
from kestra_trio.service.triggers.catalog import ActiveWorkflow
from kestra_trio.storage.triggers import ExecutionEnd, TriggerStore

#: how often the dispatcher looks for ends written by other processes
FLOW_POLL_SECONDS = 1.0
#: ends read per transaction
BATCH = 100


def followers(active: Sequence[ActiveWorkflow], end: ExecutionEnd) -> list[tuple[ActiveWorkflow, FlowTrigger]]:
    """The enabled flow triggers that this end starts."""
    return [
        (item, trigger)
        for item in active
        for trigger in item.workflow.triggers
        if isinstance(trigger, FlowTrigger) and trigger.enabled
        and trigger.workflow == end.workflow_id
        and (trigger.namespace or item.workflow.namespace) == end.namespace
        and end.state in trigger.states
    ]


@dataclass
class FlowDispatcher:
    load: Callable[[], Awaitable[Sequence[ActiveWorkflow]]]
    store: TriggerStore
    fire: Callable[[ActiveWorkflow, FlowTrigger, ExecutionEnd], Awaitable[bool]]
    on_error: Callable[[str], None]
    poll_seconds: float = FLOW_POLL_SECONDS

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            try:
                more = await self.dispatch()
            except Exception as exc:  # a locked or broken database must not stop the dispatcher
                self.on_error(f"flow triggers: {exc}")
                more = False
            if not more:
                await trio.sleep(self.poll_seconds)

    async def dispatch(self) -> bool:
        """Handle one batch of ends; True when there may be more right away."""
        ends = await self.store.ends(BATCH)
        if not ends:
            return False
        active = await self.load()
        for end in ends:
            for item, trigger in followers(active, end):
                await self.fire(item, trigger, end)
        await self.store.consume([end.id for end in ends])
        return len(ends) == BATCH
