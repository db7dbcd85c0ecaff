"""JSON Schemas (2020-12, as OpenAPI 3.1 uses) of the API's bodies and answers.

Request bodies are checked against these before a handler runs (`call.py`); answers are the
`query.documents` objects the CLI prints, described here and checked in tests.
"""

from __future__ import annotations

from typing import Any

from kestra_trio.model.validation import ID_PATTERN

MAX_REASON_CHARS = 1000


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


STRING, INTEGER, TIME = {"type": "string"}, {"type": "integer"}, {"type": ["string", "null"], "format": "date-time"}
ANY_OBJECT = {"type": "object"}
STATE = {"type": "string", "enum": ["QUEUED", "PENDING", "WAITING", "RUNNING", "SUCCESS", "FAILED", "CANCELLED", "SKIPPED"]}

_EXECUTION_FIELDS: dict[str, Any] = {
    "id": STRING, "workflow_id": STRING, "namespace": STRING, "state": STATE,
    "reason": _nullable("string"), "message": _nullable("string"), "trigger": STRING,
    "inputs": {"type": ["object", "null"]}, "workflow_path": _nullable("string"),
    "workflow_revision": _nullable("integer"), "trigger_data": {"type": ["object", "null"]}, "queue": STRING,
    "created_at": TIME, "started_at": TIME, "ended_at": TIME, "duration_ms": _nullable("integer"),
    "timeout_ms": _nullable("integer"), "task_count": INTEGER, "log_entry_count": INTEGER, "log_entries_lost": INTEGER,
    "failed_task_id": _nullable("string"), "cancelled_by": _nullable("string"),
    "engine_pid": _nullable("integer"), "engine_host": _nullable("string"),
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": STRING, "message": STRING},
        "description": "`error` is a stable code (not_found, invalid, unauthorized, ...); `message` one line for people.",
    },
    "StartExecution": {
        "type": "object",
        "required": ["workflow"],
        "additionalProperties": False,
        "properties": {
            "workflow": {"type": "string", "pattern": ID_PATTERN, "maxLength": 200, "description": "a workflow id of the registry"},
            "inputs": {
                "type": "object", "maxProperties": 200,
                "description": "input values: text as `--input NAME=VALUE` takes it, or JSON values (checked the same way)",
            },
            "labels": {
                "type": "object", "maxProperties": 64, "additionalProperties": {"type": "string"},
                "description": "labels of this execution (keys as in a workflow's `labels:`)",
            },
        },
    },
    "Started": {
        "type": "object",
        "required": ["id", "state", "workflow_id"],
        "properties": {"id": STRING, "state": STATE, "workflow_id": STRING, "workflow_revision": _nullable("integer")},
    },
    "CancelExecution": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "maxLength": MAX_REASON_CHARS, "description": "recorded in the audit log"}},
    },
    "RestartExecution": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "from_task": {"type": "string", "maxLength": 256, "description": "this task and what follows run again"},
            "reason": {"type": "string", "maxLength": MAX_REASON_CHARS, "description": "recorded in the audit log"},
        },
    },
    "EnabledAnswer": {
        "type": "object",
        "required": ["id", "enabled", "changed"],
        "properties": {"id": STRING, "enabled": {"type": "boolean"},
                       "changed": {"type": "boolean", "description": "false: it already was"}},
    },
    "RevisionList": {
        "type": "object",
        "required": ["revisions"],
        "properties": {"revisions": {"type": "array", "items": {"type": "object", "properties": {
            "workflow_id": STRING, "revision": INTEGER, "namespace": STRING, "sha256": STRING,
            "task_count": INTEGER, "source_path": _nullable("string"), "applied_at": STRING,
        }}}},
    },
    "CancelAnswer": {
        "type": "object",
        "required": ["id", "state", "requested", "finished"],
        "properties": {
            "id": STRING, "state": STATE,
            "requested": {"type": "boolean", "description": "false: it had finished, or a cancel was already requested"},
            "finished": {"type": "boolean", "description": "it had already finished: nothing changed"},
            "engine_gone": {"type": "boolean", "description": "it is not finished and the engine that ran it is gone: nobody acts on the request (false once finished)"},
        },
    },
    "Execution": {
        "type": "object",
        "required": ["id", "workflow_id", "state", "created_at"],
        "properties": {**_EXECUTION_FIELDS, "task_states": {"type": "object", "additionalProperties": INTEGER}},
        "description": "An execution as `execution list --json` prints it.",
    },
    "ExecutionPage": {
        "type": "object",
        "required": ["executions", "next_cursor"],
        "properties": {"executions": {"type": "array", "items": _ref("Execution")}, "next_cursor": _nullable("string")},
    },
    "TaskRun": {
        "type": "object",
        "required": ["task_id", "state", "attempts"],
        "properties": {
            "task_id": STRING, "type": STRING, "position": INTEGER, "state": STATE, "reason": _nullable("string"),
            "message": _nullable("string"),
            "needs": {"type": "array", "items": {"type": "object", "properties": {"task_id": STRING, "state": _nullable("string")}}},
            "attempt_count": INTEGER, "max_attempts": INTEGER, "timeout_ms": _nullable("integer"),
            "started_at": TIME, "ended_at": TIME, "duration_ms": _nullable("integer"),
            "inputs": {"type": ["object", "null"]}, "outputs": {"type": ["object", "null"]}, "error": {"type": ["object", "null"]},
            "attempts": {"type": "array", "items": ANY_OBJECT},
        },
    },
    "ExecutionDetail": {
        "type": "object",
        "required": ["execution", "tasks", "audit_events", "generated_at"],
        "properties": {
            "execution": {"type": "object", "properties": _EXECUTION_FIELDS, "required": ["id", "state"]},
            "tasks": {"type": "array", "items": _ref("TaskRun")},
            "audit_events": {"type": "array", "items": {
                "type": "object", "required": ["id", "event_type", "timestamp"],
                "properties": {"id": INTEGER, "event_type": STRING, "timestamp": TIME, "metadata": {"type": ["object", "null"]}},
            }},
            "generated_at": TIME,
            "task_logs": {"type": "array", "items": _ref("LogEntry")},
            "sandbox": ANY_OBJECT,
        },
        "description": "Exactly what `execution inspect --json` prints.",
    },
    "LogEntry": {
        "type": "object",
        "required": ["execution_id", "timestamp", "level", "source", "message"],
        "properties": {
            "execution_id": STRING, "task_id": _nullable("string"), "timestamp": TIME,
            "level": {"type": "string", "enum": ["DEBUG", "INFO", "WARN", "ERROR"]}, "source": STRING, "message": STRING,
            "metadata": ANY_OBJECT,
        },
        "description": "One entry as `execution logs --jsonl` prints it.",
    },
    "LogPage": {
        "type": "object",
        "required": ["entries", "next_cursor"],
        "properties": {"entries": {"type": "array", "items": _ref("LogEntry")}, "next_cursor": _nullable("string")},
    },
    "Workflow": {
        "type": "object",
        "required": ["id", "namespace", "revision", "enabled"],
        "properties": {
            "id": STRING, "namespace": STRING, "revision": INTEGER, "enabled": {"type": "boolean"},
            "task_count": INTEGER, "source_path": _nullable("string"), "created_at": TIME, "updated_at": TIME,
        },
    },
    "WorkflowList": {
        "type": "object",
        "required": ["workflows"],
        "properties": {"workflows": {"type": "array", "items": _ref("Workflow")}},
    },
    "Trigger": {
        "type": "object",
        "required": ["id", "type", "enabled"],
        "properties": {
            "id": STRING, "type": {"type": "string", "enum": ["cron", "webhook", "flow"]}, "enabled": {"type": "boolean"},
            "cron": STRING, "timezone": STRING, "catch_up": STRING,
            "next_fire_times": {"type": "array", "items": {"type": "string", "format": "date-time"}},
            "path": {"type": "string", "description": "webhook: where to POST (the key is never shown)"},
            "workflow": STRING, "namespace": _nullable("string"), "states": {"type": "array", "items": STRING},
        },
    },
    "WorkflowDetail": {
        "allOf": [_ref("Workflow")],
        "type": "object",
        "required": ["triggers", "inputs"],
        "properties": {
            "description": _nullable("string"),
            "inputs": {"type": "array", "items": {"type": "object", "properties": {
                "name": STRING, "type": STRING, "required": {"type": "boolean"}, "default": {}, "description": _nullable("string"),
            }}},
            "triggers": {"type": "array", "items": _ref("Trigger")},
            "labels": {"type": "object", "additionalProperties": STRING},
            "concurrency": {"type": ["object", "null"]},
            "source": {"type": "string", "description": "the YAML text of the revision shown"},
            "shown_revision": {"type": "integer", "description": "the revision whose source, inputs and triggers are shown"},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "version"],
        "properties": {"status": {"type": "string", "enum": ["ok", "stopping"]}, "version": STRING},
    },
    "WebhookBody": {"description": "any JSON value; it becomes `{{ trigger.body }}`"},
}
