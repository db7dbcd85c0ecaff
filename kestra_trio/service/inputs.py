"""A run's inputs from what a caller gave: the HTTP API's JSON values and a trigger's `inputs:`.

Both go through `model.inputs.coerce_inputs`, the check `run --input` makes, so a value is
accepted or refused with the same words whichever door it came through: a JSON value that is
not text is first written as the JSON text a user would type (`3`, `true`, `{"a":1}`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kestra_trio.model.inputs import coerce_inputs
from kestra_trio.model.workflow import TriggerSpec, Workflow


def input_texts(given: Mapping[str, Any]) -> dict[str, str]:
    """JSON values → the texts `--input NAME=VALUE` would carry."""
    return {
        name: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        for name, value in given.items()
    }


def given_inputs(workflow: Workflow, given: Mapping[str, Any]) -> dict[str, Any]:
    """Typed inputs from JSON values, checked as `run --input` checks them.

    Raises:
        InputError: unknown, missing or mistyped inputs, all in one message.
    """
    return coerce_inputs(workflow, input_texts(given))


def trigger_inputs(
    workflow: Workflow, trigger: TriggerSpec, data: Mapping[str, Any], *, revision: int | None
) -> dict[str, Any]:
    """The inputs a trigger starts `workflow` with: its `inputs:` rendered against `{{ trigger.* }}`
    (`data` plus the trigger's type) and `{{ workflow.* }}`, then checked as `run --input` checks them.

    Raises:
        TemplateError: a template of `inputs:` cannot be rendered with this trigger's data.
        InputError: the rendered values do not fit the workflow's inputs.
    """
    from kestra_trio.model.templates import TemplateContext, render

    context = TemplateContext(
        trigger={**data, "type": trigger.type},
        workflow={"id": workflow.id, "namespace": workflow.namespace, "revision": revision},
    )
    rendered = render(dict(trigger.inputs), context) if trigger.inputs else {}
    return given_inputs(workflow, rendered)
