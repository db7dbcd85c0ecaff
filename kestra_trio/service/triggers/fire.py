"""One fire of a trigger → one QUEUED execution on the shared queue, recorded with its fire.

Shared by every trigger type: the trigger's `inputs:` are rendered (they may use
`{{ trigger.* }}` and `{{ workflow.* }}`) over the workflow's declared defaults, and the
execution is enqueued with the fire so that the fire and its execution exist together or
not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kestra_trio.errors import InputError
from kestra_trio.model.workflow import TriggerSpec
from kestra_trio.service.inputs import trigger_inputs as checked_trigger_inputs
from kestra_trio.service.triggers.catalog import ActiveWorkflow
from kestra_trio.storage.executions import DEFAULT_QUEUE
from kestra_trio.storage.triggers import AlreadyFired, TriggerFire

if TYPE_CHECKING:
    from kestra_trio.service.app import Service


def trigger_inputs(item: ActiveWorkflow, trigger: TriggerSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    """The execution's inputs: the trigger's (rendered), checked as `run --input` and a webhook
    check them (`service.inputs.trigger_inputs`), over the declared defaults.

    Raises:
        InputError: a template of the trigger's inputs fails, or the values do not fit the inputs.
    """
    try:
        return checked_trigger_inputs(item.workflow, trigger, data, revision=item.revision)
    except InputError as exc:
        raise InputError(f"trigger {trigger.id}: {exc}") from None
    except Exception as exc:  # TemplateError and what a template can raise
        raise InputError(f"trigger {trigger.id}: its inputs do not render: {exc}") from None


async def fire(
    service: Service, item: ActiveWorkflow, trigger: TriggerSpec, data: Mapping[str, Any], record: TriggerFire | None,
) -> str | None:
    """Enqueue the execution `trigger` starts, with its fire record; None if that fire was made
    before. (A webhook has no fire to deduplicate: `record` None.)

    Raises:
        InputError: the trigger's inputs cannot be built (nothing is enqueued).
    """
    inputs = trigger_inputs(item, trigger, data)
    try:
        return await service.enqueue(
            item.workflow, inputs, trigger_type=trigger.type, queue=DEFAULT_QUEUE, workflow_revision=item.revision,
            workflow_path=item.workflow.source_path, trigger={"id": trigger.id, **data}, fire=record,
        )
    except AlreadyFired:
        return None
