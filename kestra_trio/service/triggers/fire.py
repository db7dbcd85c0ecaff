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
from kestra_trio.model.templates import TemplateContext, render
from kestra_trio.model.workflow import TriggerSpec
from kestra_trio.service.triggers.catalog import ActiveWorkflow
from kestra_trio.storage.executions import DEFAULT_QUEUE
from kestra_trio.storage.triggers import AlreadyFired, TriggerFire

if TYPE_CHECKING:
    from kestra_trio.service.app import Service


def trigger_inputs(item: ActiveWorkflow, trigger: TriggerSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    """The execution's inputs: the trigger's (rendered) over the declared defaults.

    Raises:
        InputError: a template of the trigger's inputs fails, or a required input has no value.
    """
    workflow = item.workflow
    context = TemplateContext(
        trigger={**data, "type": trigger.type},
        workflow={"id": workflow.id, "namespace": workflow.namespace, "revision": item.revision},
    )
    try:
        given = render(dict(trigger.inputs), context)
    except Exception as exc:  # TemplateError and what a template can raise
        raise InputError(f"trigger {trigger.id}: its inputs do not render: {exc}") from None
    values: dict[str, Any] = {}
    for spec in workflow.inputs:
        if spec.name in given:
            values[spec.name] = given[spec.name]
        elif spec.required:
            raise InputError(f"trigger {trigger.id}: missing required input {spec.name!r} (give it under the trigger's inputs:)")
        else:
            values[spec.name] = spec.default
    return values


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
