"""`GET /workflows/{id}`: a registry entry with what its current revision declares."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from kestra_trio.errors import WorkflowError
from kestra_trio.model.workflow import CronTrigger, FlowTrigger, TriggerSpec, WebhookTrigger
from kestra_trio.query.documents import iso_ms, workflow_document
from kestra_trio.server.http.context import ApiContext
from kestra_trio.storage.workflows import WorkflowRow

#: fire times shown per cron trigger
NEXT_FIRE_TIMES = 3


def trigger_document(workflow_id: str, trigger: TriggerSpec, now: datetime) -> dict[str, Any]:
    """A trigger as the API shows it: never a webhook's key (it is the credential)."""
    item: dict[str, Any] = {"id": trigger.id, "type": trigger.type, "enabled": trigger.enabled}
    if isinstance(trigger, CronTrigger):
        from kestra_trio.model.schedule import next_fire_times

        item |= {"cron": trigger.cron, "timezone": trigger.timezone, "catch_up": trigger.catch_up}
        try:
            times = next_fire_times(trigger, now, NEXT_FIRE_TIMES) if trigger.enabled else []
        except (ValueError, StopIteration):  # an expression that never fires (Feb 30)
            times = []
        item["next_fire_times"] = [iso_ms(int(t.timestamp() * 1000)) for t in times]
    elif isinstance(trigger, WebhookTrigger):
        item["path"] = f"/api/v1/webhooks/{workflow_id}/{{key}}"
    elif isinstance(trigger, FlowTrigger):
        item |= {"workflow": trigger.workflow, "namespace": trigger.namespace, "states": list(trigger.states)}
    return item


async def workflow_detail(ctx: ApiContext, row: WorkflowRow) -> dict[str, Any]:
    document = workflow_document(row)
    try:
        workflow = await ctx.service.workflow_at(row.id, row.revision)
    except (LookupError, WorkflowError) as exc:  # e.g. a plugin it uses is gone: say so, show the rest
        return document | {"description": None, "inputs": [], "triggers": [], "labels": {}, "concurrency": None,
                           "problem": f"revision {row.revision} cannot be loaded: {exc}"}
    now = datetime.now(timezone.utc)
    concurrency = workflow.concurrency
    return document | {
        "description": workflow.description,
        "inputs": [
            {"name": spec.name, "type": spec.type, "required": spec.required, "default": spec.default,
             "description": spec.description}
            for spec in workflow.inputs
        ],
        "triggers": [trigger_document(row.id, trigger, now) for trigger in workflow.triggers],
        "labels": dict(workflow.labels),
        "concurrency": None if concurrency is None else {"limit": concurrency.limit, "behavior": concurrency.behavior},
    }
