"""Which template references are legal where: the rules `validate` applies to each path.

A template's meaning depends on where it is written: `item` exists only in a for_each
task, `execution.error` only in `errors:`/`finally:` tasks, `tasks.X` only for X that ran
before, secrets only where a task is granted them. Each place of a workflow has a `Scope`;
`reference_problem` says what is wrong with one `Reference` there, with did-you-mean.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from kestra_trio.model.diagnostics import did_you_mean
from kestra_trio.model.templates import ROOTS, Reference

__all__ = ["EXECUTION_FIELDS", "TRIGGER_FIELDS", "WORKFLOW_FIELDS", "Scope", "TemplateNames", "reference_problem"]

Phase = Literal["tasks", "errors", "finally"]

EXECUTION_FIELDS = ("id", "started_at", "error")
WORKFLOW_FIELDS = ("id", "namespace", "revision")
TASK_FIELDS = ("id", "attempt")
TRIGGER_FIELDS = ("type", "scheduled_at", "body", "headers", "execution_id")

_TASK_ROOTS = frozenset({"inputs", "vars", "tasks", "execution", "workflow", "task", "trigger"})


@dataclass(frozen=True, slots=True)
class Scope:
    """One place templates are written, and what they may use there."""

    #: how the place is named in messages: "run_if", "variables", "workflow outputs" ...
    site: str
    roots: frozenset[str]
    #: the task the template belongs to and its phase (None: not in a task)
    task_id: str | None = None
    phase: Phase | None = None
    task_fields: tuple[str, ...] = TASK_FIELDS
    #: why a root that exists is not allowed here
    refused: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    @functools.lru_cache(maxsize=64)
    def _task_inputs(cls, phase: Phase, for_each: bool) -> frozenset[str]:
        return frozenset(_TASK_ROOTS | {"secrets"} | ({"item", "item_index"} if for_each else set()))

    @classmethod
    def task_inputs(cls, task_id: str | None, phase: Phase, *, for_each: bool) -> Scope:
        return cls("inputs", cls._task_inputs(phase, for_each), task_id, phase)

    @classmethod
    def task_condition(cls, site: str, task_id: str | None, phase: Phase) -> Scope:
        """`run_if` and `for_each`: decided before the task starts, never sent to a plugin."""
        why = f"secrets cannot be used in {site} (only in task inputs, where the task is granted them)"
        return cls(site, _TASK_ROOTS, task_id, phase, ("id",), {"secrets": why})


#: `outputs:` of the workflow: stored with the execution and shown by inspect
WORKFLOW_OUTPUTS = Scope(
    "workflow outputs", frozenset({"inputs", "vars", "tasks", "execution", "workflow", "trigger"}),
    refused={"secrets": "secrets cannot be used in workflow outputs: they are stored and shown in clear",
             "task": "task is only set inside a task"},
)  # fmt: skip
#: `variables:`: rendered once, when the execution starts
VARIABLES = Scope(
    "variables", frozenset({"inputs", "execution", "workflow", "trigger"}),
    refused={"tasks": "variables are rendered before any task runs; use tasks.* in task inputs",
             "vars": "a variable cannot use other variables",
             "secrets": "secrets cannot be used in variables; use {{ secrets.NAME }} in task inputs",
             "task": "task is only set inside a task"},
)  # fmt: skip
#: a trigger's `inputs:` values, rendered when it fires
TRIGGER_INPUTS = Scope(
    "trigger inputs", frozenset({"trigger", "workflow"}),
    refused={"secrets": "secrets cannot be passed as trigger inputs; use {{ secrets.NAME }} in task inputs"},
)


@dataclass(frozen=True, slots=True)
class TemplateNames:
    """What the workflow declares, for did-you-mean and upstream checks."""

    inputs: frozenset[str]
    variables: Mapping[str, Any]
    #: task id -> phase, for every task of the workflow
    tasks: Mapping[str, Phase]
    #: (task, target) -> whether target is upstream of task (same phase)
    upstream: Callable[[str, str], bool]


def reference_problem(ref: Reference, scope: Scope, names: TemplateNames) -> str | None:
    """What is wrong with `ref` written at `scope`, or None."""
    root = ref.root
    if root not in ROOTS:
        legal = ", ".join(r for r in ROOTS if r in scope.roots)
        return f"{ref.raw}: unknown name {root!r}{did_you_mean(root, sorted(scope.roots)) or f' (use {legal})'}"
    if root not in scope.roots:
        if root in scope.refused:
            return f"{ref.raw}: {scope.refused[root]}"
        if root in ("item", "item_index"):
            return f"{ref.raw}: {root} is only set in a task with for_each"
        if root == "task":
            return f"{ref.raw}: task is only set inside a task"
        return f"{ref.raw}: {root} cannot be used in {scope.site}"
    name = ref.name
    if root == "inputs" and isinstance(name, str) and name not in names.inputs:
        return f"{ref.raw}: input {name!r} is not declared{did_you_mean(name, names.inputs) or ' (declare it under inputs:)'}"
    if root == "vars" and name is not None:
        return _variable_problem(ref, names.variables)
    if root == "execution" and name is not None:
        return _field_problem(ref, EXECUTION_FIELDS) or _error_problem(ref, scope)
    if root == "workflow" and name is not None:
        return _field_problem(ref, WORKFLOW_FIELDS)
    if root == "task" and name is not None:
        problem = _field_problem(ref, TASK_FIELDS)
        if problem is None and name not in scope.task_fields:
            return f"{ref.raw}: task.{name} is only known in the task's inputs"
        return problem
    if root == "trigger" and name is not None:
        return _field_problem(ref, TRIGGER_FIELDS)
    if root == "tasks" and isinstance(name, str) and len(ref.parts) > 1 and ref.parts[1] == "outputs":
        return _task_problem(ref, name, scope, names)  # (other shapes are reported as malformed)
    return None


def _field_problem(ref: Reference, fields: tuple[str, ...]) -> str | None:
    name = ref.name
    if name in fields:
        return None
    hint = did_you_mean(str(name), fields) or " (it has " + ", ".join(fields) + ")"
    return f"{ref.raw}: {ref.root} has no field {name!r}{hint}"


def _error_problem(ref: Reference, scope: Scope) -> str | None:
    if ref.name == "error" and scope.phase not in ("errors", "finally"):
        return f"{ref.raw}: execution.error is only set in errors: and finally: tasks"
    return None


def _variable_problem(ref: Reference, variables: Mapping[str, Any]) -> str | None:
    """The variable exists; where its value is written out, the keys under it too."""
    value: Any = variables
    where = "variables"
    for part in ref.parts:
        if isinstance(value, Mapping):
            if part not in value:
                choices = [str(key) for key in value]
                hint = did_you_mean(str(part), choices) or (f" (has: {', '.join(sorted(choices))})" if choices else "")
                what = f"variable {part!r} is not declared" if where == "variables" else f"{where} has no key {part!r}"
                return f"{ref.raw}: {what}{hint}"
        elif isinstance(value, list):
            if not isinstance(part, int) or not -len(value) <= part < len(value):
                return f"{ref.raw}: {where} has no item {part} (it has {len(value)} item(s))"
        else:
            return None  # a template or a scalar: known only when the run starts
        value = value[part]
        where = f"vars.{ref.parts[0]}" if where == "variables" else f"{part!r} in {where}"
    return None


def _task_problem(ref: Reference, target: str, scope: Scope, names: TemplateNames) -> str | None:
    phase = names.tasks.get(target)
    if phase is None:
        return f"{ref.raw}: unknown task {target!r}{did_you_mean(target, names.tasks)}"
    if scope.task_id is None:  # workflow outputs: the main tasks' outputs only
        if phase != "tasks":
            return f"{ref.raw}: workflow outputs can only use outputs of tasks: (task {target!r} is in {phase}:)"
        return None
    if target == scope.task_id:
        return f"{ref.raw}: a task cannot use its own outputs"
    if phase == "tasks" and scope.phase in ("errors", "finally"):
        return None  # every task of tasks: is done before errors:/finally: start
    if phase != scope.phase:
        if phase == "errors":
            return f"{ref.raw}: task {target!r} is in errors:, which may not have run"
        return f"{ref.raw}: task {target!r} is in {phase}:, which runs after {scope.phase}:"
    if not names.upstream(scope.task_id, target):
        return f"{ref.raw}: task {target!r} is not upstream of {scope.task_id!r} (add it to needs)"
    return None
