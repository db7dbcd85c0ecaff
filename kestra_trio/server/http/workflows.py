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


def shown_source(source: str) -> str:
    """A revision's source as the API shows it: a webhook's key is its credential, so every
    literal key written in it is masked — or nothing is shown when that cannot be certain."""
    from kestra_trio.model.source_masking import NOT_SHOWN, mask_webhook_keys

    masked = mask_webhook_keys(source)
    return NOT_SHOWN if masked is None else masked


#: stored source hash -> the hash of the source as shown (revisions never change)
_SHOWN_HASHES: dict[str, str] = {}
_SHOWN_HASHES_MAX = 4096


async def revisions_shown(ctx: ApiContext, rows: list[RevisionRow]) -> list[dict[str, Any]]:
    """`workflow history --json` items, each `sha256` that of the source as `GET /workflows/{id}`
    shows it: the stored source's hash would let a reader test guesses of a literal webhook key
    offline. (It equals the file's SHA-256 when the file writes no literal key.)"""
    from kestra_trio.query.documents import revision_document
    from kestra_trio.storage.workflows import source_hash

    documents = []
    for row in rows:
        shown = _SHOWN_HASHES.get(row.source_hash)
        if shown is None:
            stored = await ctx.workflows.revision(row.workflow_id, row.revision)
            shown = source_hash(shown_source((stored.source if stored else None) or ""))
            if len(_SHOWN_HASHES) >= _SHOWN_HASHES_MAX:
                _SHOWN_HASHES.clear()
            _SHOWN_HASHES[row.source_hash] = shown
        documents.append(revision_document(row) | {"sha256": shown})
    return documents


async def workflow_detail(ctx: ApiContext, row: WorkflowRow, stored: RevisionRow) -> dict[str, Any]:
    """The registry entry, with what revision `stored` (the current one unless asked) declares."""
    document = workflow_document(row) | {"shown_revision": stored.revision}
    source = stored.source or ""
    try:
        workflow = await ctx.service.workflow_at(row.id, stored.revision)
    except (LookupError, WorkflowError) as exc:  # e.g. a plugin it uses is gone: say so, show the rest
        return document | {"description": None, "inputs": [], "triggers": [], "labels": {}, "concurrency": None,
                           "source": shown_source(source),
                           "problem": f"revision {stored.revision} cannot be loaded: {exc}"}
    document["source"] = shown_source(source)
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
