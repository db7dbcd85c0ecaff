"""The published JSON Schema of issue 11's keys, merged into `workflow_json_schema()`.

Shapes only, like the rest of the schema: which roots a template may use, needs between
phases and the like are checked by `kestra-trio validate`.
"""

from __future__ import annotations

import copy
from typing import Any

from kestra_trio.model.flow_checks import (
    API_VERSIONS,
    CATCH_UP_MODES,
    CONCURRENCY_BEHAVIORS,
    FLOW_TRIGGER_STATES,
    LABEL_KEY_PATTERN,
    MAX_CONCURRENCY,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MIN_WEBHOOK_KEY,
    SUBFLOW_INPUT_SCHEMA,
)
from kestra_trio.model.workflow import SUBFLOW_TYPE

__all__ = ["add_flow_schema"]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"


def _trigger_variants(identifier: dict[str, Any], *, single: bool) -> list[dict[str, Any]]:
    inputs = {"type": "object", "description": "Inputs of the execution it starts (names declared under inputs:)."}
    enabled = {"type": "boolean", "default": True, "description": "false: the trigger does not fire."}
    trigger_id = {**identifier, "description": "Unique trigger id (the server keeps its state under it)."}
    common = {"id": trigger_id, "inputs": inputs, "enabled": enabled}
    cron = {
        "cron": {
            "type": "string",
            "description": "5 fields (minute hour day month weekday), 6 with seconds first, or @hourly, @daily, @weekly, @monthly, @yearly.",
            "examples": ["*/15 * * * *", "0 2 * * 1-5", "@daily"],
        },
        "timezone": {"type": "string", "default": "UTC", "description": "IANA time zone the schedule is read in, e.g. Europe/Paris."},
        "catch_up": {"enum": list(CATCH_UP_MODES), "default": "last", "description": "Fire times missed while the server was down: run none, the last one, or all."},
    }
    if single:
        cron["schedule"] = {"type": "string", "description": "The cron expression (the first release's name for cron)."}
    variants: list[dict[str, Any]] = [
        {"properties": {"type": {"const": "cron"}, **common, **cron}},
        {"properties": {"type": {"const": "webhook"}, **common, "key": {
            "type": "string",
            "description": f"The secret part of the webhook URL: at least {MIN_WEBHOOK_KEY} characters, or {{{{ secrets.NAME }}}}.",
        }}, "required": ["key"]},
        {"properties": {"type": {"const": "flow"}, **common,
            "workflow": {**identifier, "description": "Id of the workflow whose executions start this one."},
            "namespace": {"type": "string", "description": "Its namespace (default: this workflow's)."},
            "states": {"type": "array", "minItems": 1, "items": {"enum": list(FLOW_TRIGGER_STATES)}, "default": ["SUCCESS"],
                       "description": "End states of that workflow's executions that start this one."},
        }, "required": ["workflow"]},
    ]  # fmt: skip
    for variant in variants:
        variant["type"] = "object"
        variant["additionalProperties"] = False
        variant["required"] = ["type", *variant.get("required", []), *([] if single else ["id"])]
    if single:
        variants[0]["anyOf"] = [{"required": ["cron"]}, {"required": ["schedule"]}]
        variants.insert(0, {"type": "object", "additionalProperties": False, "properties": {"type": {"const": "manual"}}})
    else:
        variants[0]["required"].append("cron")
    return variants


def add_flow_schema(
    schema: dict[str, Any], task: dict[str, Any], identifier: dict[str, Any]
) -> dict[str, Any]:
    """Add the flow keys to the workflow schema (its task schema is changed in place)."""
    task["properties"].update({
        "run_if": {
            "description": "Run the task only when this is true; false: it ends SKIPPED. A template such as \"{{ inputs.env == 'prod' }}\", or true/false.",
            "type": ["string", "boolean"],
        },
        "for_each": {
            "description": "Run the task once per item of this list ({{ item }}, {{ item_index }}): a template that gives a list, or a list.",
            "type": ["string", "array"],
        },
        "concurrency": {"type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY, "default": 1,
                        "description": "With for_each: how many iterations run at once."},
        "allow_failure": {"type": "boolean", "default": False,
                          "description": "true: if this task fails, the execution goes on and can still end SUCCESS."},
    })  # fmt: skip
    # a subflow's inputs are known without its plugin
    task["if"] = {"properties": {"type": {"const": SUBFLOW_TYPE}}, "required": ["type"]}
    task["then"] = {"properties": {"inputs": SUBFLOW_INPUT_SCHEMA}}
    phase_task = copy.deepcopy(task)
    schema["properties"].update({
        "apiVersion": {"enum": list(API_VERSIONS), "description": "Version of this file format (optional)."},
        "version": {"enum": [*API_VERSIONS, *(int(v[1:]) for v in API_VERSIONS)], "description": "Same as apiVersion: v1 or 1 (optional)."},
        "trigger": {"description": "What starts the workflow besides `kestra-trio run` (one trigger; see triggers for several).",
                    "oneOf": _trigger_variants(identifier, single=True)},
        "triggers": {"type": "array", "description": "What starts the workflow besides `kestra-trio run`: cron schedules, webhooks, other workflows' executions.",
                     "items": {"oneOf": _trigger_variants(identifier, single=False)}},
        "concurrency": {
            "type": "object", "additionalProperties": False, "required": ["limit"],
            "description": "How many executions of this workflow may run at once.",
            "properties": {
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY},
                "behavior": {"enum": list(CONCURRENCY_BEHAVIORS), "default": "queue",
                             "description": "One more execution: queue waits its turn; cancel and fail end it at once."},
            },
        },
        "labels": {"type": "object", "maxProperties": MAX_LABELS, "description": "key: value text attached to every execution (execution list --label k=v).",
                   "propertyNames": {"pattern": LABEL_KEY_PATTERN}, "additionalProperties": {"type": "string", "maxLength": MAX_LABEL_VALUE}},
        "variables": {"type": "object", "propertyNames": {"pattern": _NAME},
                      "description": "Values used as {{ vars.NAME }}; may use inputs, workflow, execution and trigger templates."},
        "outputs": {"type": "object", "propertyNames": {"pattern": _NAME},
                    "description": "The execution's outputs, rendered when its tasks are done: e.g. total: \"{{ tasks.sum.outputs.n }}\"."},
        "errors": {"type": "array", "minItems": 1, "items": phase_task,
                   "description": "Tasks run when the execution failed ({{ execution.error }} says which task and why)."},
        "finally": {"type": "array", "minItems": 1, "items": phase_task,
                    "description": "Tasks always run last, also after a failure, a cancel or a timeout."},
    })  # fmt: skip
    return schema
