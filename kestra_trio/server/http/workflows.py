"""`GET /workflows/{id}`: a registry entry with what its current revision declares."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from kestra_trio.errors import WorkflowError
from kestra_trio.model.workflow import CronTrigger, FlowTrigger, TriggerSpec, WebhookTrigger
from kestra_trio.query.documents import iso_ms, workflow_document
from kestra_trio.server.http.context import ApiContext
from kestra_trio.storage.workflows import RevisionRow, WorkflowRow

#: fire times shown per cron trigger
NEXT_FIRE_TIMES = 3


def trigger_document(workflow_id: str, trigger: TriggerSpec, now: datetime) -> dict[str, Any]:
    """A trigger as the API shows it: never a webhook's key (it is the credential)."""
    item: dict[str, Any] = {"id": trigger.id, "type": trigger.type, "enabled": trigger.enabled}
    if isinstance(trigger, CronTrigger):
        from kestra_trio.service.triggers.cron import next_fire  # the scheduler's own rule

        item |= {"cron": trigger.cron, "timezone": trigger.timezone, "catch_up": trigger.catch_up}
        times: list[int] = []
        at = int(now.timestamp() * 1000)
        try:
            while trigger.enabled and len(times) < NEXT_FIRE_TIMES:
                at = next_fire(trigger, at)
                times.append(at)
        except (ValueError, StopIteration):  # an expression that never fires (Feb 30)
            pass
        item["next_fire_times"] = [iso_ms(t) for t in times]
    elif isinstance(trigger, WebhookTrigger):
        item["path"] = f"/api/v1/webhooks/{workflow_id}/{{key}}"
    elif isinstance(trigger, FlowTrigger):
        item |= {"workflow": trigger.workflow, "namespace": trigger.namespace, "states": list(trigger.states)}
    return item


def written_webhook_keys(source: str) -> list[str] | None:
    """The `key:` values written in a source's triggers, read as plain YAML (for a revision that
    no longer loads); None when even that fails — the source is then not shown at all."""
    import yaml

    try:
        document = yaml.safe_load(source)
    except Exception:
        return None
    if not isinstance(document, dict):
        return []
    triggers = document.get("triggers") or []
    if isinstance(document.get("trigger"), dict):
        triggers = [*triggers, document["trigger"]] if isinstance(triggers, list) else [document["trigger"]]
    if not isinstance(triggers, list):
        return []
    return [str(t["key"]) for t in triggers if isinstance(t, dict) and t.get("key") is not None]


def without_webhook_keys(source: str, keys: list[str] | None) -> str:
    """A webhook's key is its credential: a source shown over HTTP never carries one."""
    if keys is None:
        return "(the source is not shown: it does not parse, and it may hold a webhook key)"
    for key in sorted(set(keys), key=len, reverse=True):
        source = source.replace(key, "***SECRET***")
    return source


async def workflow_detail(ctx: ApiContext, row: WorkflowRow, stored: RevisionRow) -> dict[str, Any]:
    """The registry entry, with what revision `stored` (the current one unless asked) declares."""
    document = workflow_document(row) | {"shown_revision": stored.revision}
    source = stored.source or ""
    try:
        workflow = await ctx.service.workflow_at(row.id, stored.revision)
    except (LookupError, WorkflowError) as exc:  # e.g. a plugin it uses is gone: say so, show the rest
        return document | {"description": None, "inputs": [], "triggers": [], "labels": {}, "concurrency": None,
                           "source": without_webhook_keys(source, written_webhook_keys(source)),
                           "problem": f"revision {stored.revision} cannot be loaded: {exc}"}
    keys = [t.key for t in workflow.triggers if isinstance(t, WebhookTrigger) and t.key_secret is None and t.key]
    document["source"] = without_webhook_keys(source, keys)
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
