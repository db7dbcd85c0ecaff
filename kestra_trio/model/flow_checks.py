"""Validation of the workflow language's flow keys (issue 11): run_if, for_each,
allow_failure, subflows, errors/finally, outputs, labels, variables, version, triggers and
concurrency.

A mixin of `validation._Checker`: it uses the checker's reporting and shape helpers
(`add`, `keys`, `string` ...), declared below as a Protocol so each side stays readable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from kestra_trio.model.diagnostics import did_you_mean, join_path, kind_of
from kestra_trio.model.templates import analyze, has_template_syntax
from kestra_trio.model.workflow import CRON_MACROS, SUBFLOW_TYPE

__all__ = [
    "API_VERSIONS",
    "CATCH_UP_MODES",
    "CONCURRENCY_BEHAVIORS",
    "FLOW_TRIGGER_STATES",
    "FlowChecks",
    "INT64_MAX",
    "INT64_MIN",
    "LABEL_KEY_PATTERN",
    "MAX_CONCURRENCY",
    "MAX_LABELS",
    "MAX_LABEL_VALUE",
    "SUBFLOW_INPUT_SCHEMA",
    "TaskPhase",
    "label_problem",
]

TaskPhase = Literal["tasks", "errors", "finally"]

#: the DSL versions this release reads (`apiVersion: v1`, `version: 1`)
API_VERSIONS = ("v1",)
CATCH_UP_MODES = ("none", "last", "all")
CONCURRENCY_BEHAVIORS = ("queue", "cancel", "fail")
FLOW_TRIGGER_STATES = ("SUCCESS", "FAILED", "CANCELLED")
TRIGGER_TYPES = ("cron", "webhook", "flow")
SINGLE_TRIGGER_TYPES = ("manual", *TRIGGER_TYPES)
CRON_KEYS = ("id", "type", "cron", "timezone", "catch_up", "inputs", "enabled")
WEBHOOK_KEYS = ("id", "type", "key", "inputs", "enabled")
FLOW_KEYS = ("id", "type", "workflow", "namespace", "states", "inputs", "enabled")
CONCURRENCY_KEYS = ("limit", "behavior")
#: iterations of one for_each, or executions of one workflow (`concurrency.limit`), running at once
MAX_CONCURRENCY = 1000
#: SQLite's INTEGER: no whole number of a workflow may be outside it
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_LABELS = 64
MAX_LABEL_VALUE = 256
LABEL_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$"
_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_WEBHOOK_SECRET = re.compile(r"\{\{\s*secrets\.[A-Za-z_][A-Za-z0-9_]*\s*\}\}")
MIN_WEBHOOK_KEY = 16

#: the inputs of `core/flow.subflow`, known to validation without any plugin
SUBFLOW_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["workflow"],
    "properties": {
        "workflow": {"type": "string", "minLength": 1, "description": "The child workflow: its id, or the path of its file."},
        "inputs": {"type": "object", "description": "Inputs of the child workflow."},
        "wait": {"type": "boolean", "description": "true (default): wait for the child to end and take its outputs."},
    },
}


def label_problem(key: Any, value: Any) -> str | None:
    """What is wrong with one label (the YAML `labels:` map and `run --label k=v` alike)."""
    if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
        return (
            f"label key {key!r} must be 1-63 letters, digits, '.', '_', '/' or '-', starting with a letter or digit"
        )
    if not isinstance(value, str):
        return f"label {key!r} must be text, got {kind_of(value)} (quote it: {key}: \"{value}\")"
    if len(value) > MAX_LABEL_VALUE:
        return f"label {key!r} is {len(value)} characters long; at most {MAX_LABEL_VALUE}"
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        return f"label {key!r} must not contain control characters"
    if any(0xD800 <= ord(char) <= 0xDFFF for char in value):  # undecodable argv bytes, "\ud800" in JSON
        return f"label {key!r} is not valid UTF-8 text"
    if has_template_syntax(value):
        return f"label {key!r}: labels are plain text, templates are not rendered in them"
    return None


class _Checker(Protocol):
    malformed_ids: set[str]

    def add(self, path: str, message: str, *, at_key: bool = False) -> None: ...
    def mapping(self, value: Any, path: str, what: str) -> bool: ...
    def keys(self, value: dict[str, Any], path: str, allowed: Sequence[str], required: Sequence[str] = ()) -> None: ...
    def string(self, value: dict[str, Any], key: str, path: str) -> str | None: ...
    def identifier(self, value: dict[str, Any], key: str, path: str, what: str) -> str | None: ...
    def boolean(self, value: dict[str, Any], key: str, path: str) -> None: ...
    def choice(self, value: dict[str, Any], key: str, path: str, choices: Sequence[str]) -> str | None: ...
    def finite_numbers(self, value: Any, path: str) -> None: ...


class FlowChecks:
    """The flow keys' checks; `validation._Checker` mixes them in."""

    # -- top level ---------------------------------------------------------------------

    def check_version(self: _Checker, data: dict[str, Any]) -> None:
        given = {key: data[key] for key in ("apiVersion", "version") if key in data}
        normalised = {}
        for key, value in given.items():
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                self.add(key, f"must be one of {', '.join(API_VERSIONS)}, got {kind_of(value)}")
                continue
            version = f"v{value}" if isinstance(value, int) or value.isdigit() else value
            if version not in API_VERSIONS:
                self.add(key, f"unknown version {value!r}: this kestra-trio reads {', '.join(API_VERSIONS)} (upgrade kestra-trio for a newer file)")
                continue
            normalised[key] = version
        if len(set(normalised.values())) > 1:
            self.add("version", "apiVersion and version disagree; write only one", at_key=True)

    def check_labels(self: _Checker, data: dict[str, Any]) -> None:
        labels = data["labels"]
        if not self.mapping(labels, "labels", "key: value text"):
            return
        if len(labels) > MAX_LABELS:
            self.add("labels", f"{len(labels)} labels; at most {MAX_LABELS}")
        for key, value in labels.items():
            problem = label_problem(key, value)
            if problem:
                self.add(join_path("labels", str(key)), problem, at_key=not isinstance(key, str) or not _LABEL_KEY.fullmatch(key))

    def named_values(self: _Checker, data: dict[str, Any], key: str, what: str) -> dict[str, Any]:
        """`variables:` / `outputs:`: a mapping of identifiers to values; returns the good ones."""
        values = data[key]
        if not self.mapping(values, key, f"{what} names to values"):
            return {}
        result = {}
        for name, value in values.items():
            if not isinstance(name, str) or not _ID.fullmatch(name):
                self.add(join_path(key, str(name)), f"{what} name {name!r} may use only letters, digits, '_' and '-', starting with a letter or digit", at_key=True)
                continue
            self.finite_numbers(value, join_path(key, name))
            result[name] = value
        return result

    def check_concurrency(self: _Checker, data: dict[str, Any]) -> None:
        concurrency = data["concurrency"]
        if not self.mapping(concurrency, "concurrency", "limit, behavior"):
            return
        self.keys(concurrency, "concurrency", CONCURRENCY_KEYS, required=("limit",))
        if "limit" in concurrency:
            limit = concurrency["limit"]
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CONCURRENCY:
                self.add("concurrency.limit", f"must be a whole number of executions from 1 to {MAX_CONCURRENCY}, got {limit!r}")
        self.choice(concurrency, "behavior", "concurrency", CONCURRENCY_BEHAVIORS)

    # -- triggers ----------------------------------------------------------------------

    def check_triggers(self: _Checker, data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """`trigger:` (one mapping) or `triggers:` (a list with ids); returns (path, trigger)
        pairs whose `inputs:` validation checks against the declared inputs."""
        found: list[tuple[str, dict[str, Any]]] = []
        if "trigger" in data and "triggers" in data:
            self.add("triggers", "write either trigger: (one) or triggers: (a list), not both", at_key=True)
        if "trigger" in data:
            trigger = data["trigger"]
            if self.mapping(trigger, "trigger", "type, and the keys of that type"):
                if FlowChecks.check_trigger(self, trigger, "trigger", single=True):  # type: ignore[arg-type]
                    found.append(("trigger", trigger))
        if "triggers" in data:
            triggers = data["triggers"]
            if not isinstance(triggers, list):
                self.add("triggers", f"must be a list of triggers (- id: ..., type: ...), got {kind_of(triggers)}")
                return found
            seen: dict[str, str] = {}
            for index, trigger in enumerate(triggers):
                path = join_path("triggers", index)
                if not self.mapping(trigger, path, "id, type, and the keys of that type"):
                    continue
                trigger_id = self.identifier(trigger, "id", path, "trigger id")
                if "id" not in trigger:
                    self.add(path, "missing required key 'id'", at_key=True)
                elif trigger_id is not None:
                    if trigger_id in seen:
                        self.add(join_path(path, "id"), f"duplicate trigger id {trigger_id!r} (first at {seen[trigger_id]})")
                    seen.setdefault(trigger_id, join_path(path, "id"))
                if FlowChecks.check_trigger(self, trigger, path, single=False):  # type: ignore[arg-type]
                    found.append((path, trigger))
        return found

    def check_trigger(self: _Checker, trigger: dict[str, Any], path: str, *, single: bool) -> bool:
        """One trigger's shape; True when its inputs should be checked further."""
        types = SINGLE_TRIGGER_TYPES if single else TRIGGER_TYPES
        if "type" not in trigger and not single:
            self.add(path, "missing required key 'type' (cron, webhook or flow)", at_key=True)
            return False
        kind = self.choice(trigger, "type", path, types) if "type" in trigger else "manual"
        if kind is None:
            return False
        if kind == "manual":
            for key in ("schedule", "cron"):
                if key in trigger:
                    self.add(join_path(path, key), f"{key} is only used by a cron trigger (set type: cron)", at_key=True)
            self.keys({k: v for k, v in trigger.items() if k not in ("schedule", "cron")}, path, ("type", "id"))
            return False
        allowed = {"cron": CRON_KEYS, "webhook": WEBHOOK_KEYS, "flow": FLOW_KEYS}[kind]
        if single and kind == "cron":
            allowed = (*allowed, "schedule")  # the first release's name for `cron`
        self.keys(trigger, path, allowed)
        self.boolean(trigger, "enabled", path)
        if "inputs" in trigger and not self.mapping(trigger["inputs"], join_path(path, "inputs"), "input names to values"):
            return False
        if kind == "cron":
            FlowChecks.check_cron_trigger(self, trigger, path)  # type: ignore[arg-type]
        elif kind == "webhook":
            FlowChecks.check_webhook_trigger(self, trigger, path)  # type: ignore[arg-type]
        else:
            FlowChecks.check_flow_trigger(self, trigger, path)  # type: ignore[arg-type]
        return "inputs" in trigger

    def check_cron_trigger(self: _Checker, trigger: dict[str, Any], path: str) -> None:
        keys = [key for key in ("cron", "schedule") if key in trigger]
        if not keys:
            self.add(path, 'a cron trigger needs cron: (e.g. cron: "*/5 * * * *" or cron: "@daily")', at_key=True)
        elif len(keys) == 2:
            self.add(join_path(path, "schedule"), "write the expression once, as cron:", at_key=True)
        for key in keys:
            expression = self.string(trigger, key, path)
            if expression is not None:
                problem = cron_problem(expression)
                if problem:
                    self.add(join_path(path, key), problem)
        zone = self.string(trigger, "timezone", path)
        if zone is not None:
            problem = timezone_problem(zone)
            if problem:
                self.add(join_path(path, "timezone"), problem)
        self.choice(trigger, "catch_up", path, CATCH_UP_MODES)

    def check_webhook_trigger(self: _Checker, trigger: dict[str, Any], path: str) -> None:
        if "key" not in trigger:
            self.add(path, "a webhook trigger needs key: (16+ characters, or {{ secrets.NAME }})", at_key=True)
            return
        key = self.string(trigger, "key", path)
        if key is None:
            return
        where = join_path(path, "key")
        if has_template_syntax(key):
            if not _WEBHOOK_SECRET.fullmatch(key.strip()):
                self.add(where, "a webhook key is literal text or exactly {{ secrets.NAME }}")
        elif len(key) < MIN_WEBHOOK_KEY:
            self.add(where, f"a webhook key must be at least {MIN_WEBHOOK_KEY} characters (it is what keeps the URL private), got {len(key)}")
        elif not key.isascii() or not key.isprintable() or " " in key:
            self.add(where, "a webhook key must be printable ASCII without spaces (it is part of a URL)")

    def check_flow_trigger(self: _Checker, trigger: dict[str, Any], path: str) -> None:
        if "workflow" not in trigger:
            self.add(path, "a flow trigger needs workflow: (the id of the workflow to follow)", at_key=True)
        self.identifier(trigger, "workflow", path, "workflow id")
        namespace = self.string(trigger, "namespace", path)
        if namespace is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", namespace):
            self.add(join_path(path, "namespace"), f"namespace {namespace!r} must use only letters, digits, '.', '_' and '-'")
        if "states" in trigger:
            states = trigger["states"]
            where = join_path(path, "states")
            if not isinstance(states, list) or not states:
                self.add(where, f"must be a non-empty list of {', '.join(FLOW_TRIGGER_STATES)}, got {kind_of(states)}")
                return
            for index, state in enumerate(states):
                if state not in FLOW_TRIGGER_STATES:
                    hint = did_you_mean(str(state).upper(), FLOW_TRIGGER_STATES) if isinstance(state, str) else ""
                    self.add(join_path(where, index), f"must be one of {', '.join(FLOW_TRIGGER_STATES)}, got {state!r}{hint}")

    # -- tasks -------------------------------------------------------------------------

    def check_task_flow(self: _Checker, task: dict[str, Any], path: str, task_type: str | None) -> None:
        """run_if, for_each + concurrency, allow_failure, and a subflow's inputs."""
        if "run_if" in task:
            run_if = task["run_if"]
            if not isinstance(run_if, (str, bool)):
                self.add(join_path(path, "run_if"), f"must be a template such as \"{{{{ inputs.env == 'prod' }}}}\" or true/false, got {kind_of(run_if)}")
            elif isinstance(run_if, str) and not analyze(run_if).references and not has_template_syntax(run_if):
                if run_if.strip().lower() not in ("true", "false"):
                    self.add(join_path(path, "run_if"), f"{run_if!r} is neither a template nor true/false (write \"{{{{ ... }}}}\")")
        if "for_each" in task:
            items = task["for_each"]
            where = join_path(path, "for_each")
            if isinstance(items, str):
                if not has_template_syntax(items):
                    self.add(where, "must be a template that gives a list (e.g. \"{{ tasks.list.outputs.items }}\") or a list")
            elif isinstance(items, list):
                self.finite_numbers(items, where)
            else:
                self.add(where, f"must be a template that gives a list, or a list, got {kind_of(items)}")
        if "concurrency" in task:
            where = join_path(path, "concurrency")
            limit = task["concurrency"]
            if "for_each" not in task:
                self.add(where, "concurrency is only used with for_each", at_key=True)
            elif isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CONCURRENCY:
                self.add(where, f"must be a whole number of iterations from 1 to {MAX_CONCURRENCY}, got {limit!r}")
        self.boolean(task, "allow_failure", path)
        if task_type == SUBFLOW_TYPE:
            FlowChecks.check_subflow(self, task, path)  # type: ignore[arg-type]

    def check_subflow(self: _Checker, task: dict[str, Any], path: str) -> None:
        inputs = task.get("inputs")
        if not isinstance(inputs, dict):
            return  # a missing or malformed inputs: reported with the schema check
        workflow = inputs.get("workflow")
        if isinstance(workflow, str) and not has_template_syntax(workflow):
            is_path = "/" in workflow or workflow.endswith((".yaml", ".yml"))
            if not is_path and not _ID.fullmatch(workflow):
                self.add(
                    join_path(join_path(path, "inputs"), "workflow"),
                    f"{workflow!r} is neither a workflow id nor a path to a .yaml/.yml file",
                )


def cron_problem(expression: str) -> str | None:
    """Why a `cron:` value is not a schedule cronsim can follow, or None."""
    from datetime import datetime

    from cronsim import CronSim, CronSimError

    text = expression.strip()
    if text.startswith("@"):
        if text.lower() in CRON_MACROS:
            return None
        return f"unknown schedule {text!r}{did_you_mean(text.lower(), CRON_MACROS)} (use {', '.join(CRON_MACROS)} or 5 fields)"
    if len(text.split()) not in (5, 6):
        return f"invalid cron expression {expression!r}: {len(text.split())} fields; write 5 (minute hour day month weekday) or 6 (seconds first)"
    try:
        CronSim(text, datetime(2000, 1, 1))
    except CronSimError as exc:
        return f"invalid cron expression {expression!r}: {str(exc).lower()} (e.g. \"*/5 * * * *\")"
    except Exception as exc:  # cronsim raising something else must not become a traceback
        return f"invalid cron expression {expression!r}: {exc}"
    return None


def timezone_problem(name: str) -> str | None:
    """Why `timezone:` is not an IANA zone this machine knows, or None."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown time zone {name!r}{did_you_mean(name, sorted(available_timezones()))} (an IANA name such as Europe/Paris or UTC)"
    return None
