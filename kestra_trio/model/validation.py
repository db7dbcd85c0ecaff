"""Workflow validation: every problem in a document at once, each with file:line:column.

Checks are hand-written rather than raw JSON Schema errors so that each message says what
was wrong and what to write instead. The same rules are published as a JSON Schema
(`workflow_json_schema`) for editors; tests keep the two in step.

Identifier rule (task ids, input names, workflow id): `^[A-Za-z0-9][A-Za-z0-9_-]*$` -
letters, digits, `_` and `-`, starting with a letter or digit, so that an id can appear in
a dotted template path (`tasks.ID.outputs`) and in a shell without quoting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kestra_trio.model.catalog import ActionCatalog
from kestra_trio.model.dag import find_cycles
from kestra_trio.model.diagnostics import did_you_mean as _suggest
from kestra_trio.model.diagnostics import join_path
from kestra_trio.model.diagnostics import kind_of as _kind
from kestra_trio.model.durations import MAX_SECONDS, parse_duration
from kestra_trio.model.sizes import SIZE_PATTERN, parse_size
from kestra_trio.model.flow_checks import INT64_MAX, INT64_MIN, SUBFLOW_INPUT_SCHEMA, FlowChecks, TaskPhase
from kestra_trio.model.flow_schema import add_flow_schema
from kestra_trio.model.template_scope import (
    TRIGGER_INPUTS,
    VARIABLES,
    WORKFLOW_OUTPUTS,
    Scope,
    TemplateNames,
    reference_problem,
)
from kestra_trio.model.templates import (
    TemplateError,
    UnsupportedTemplate,
    has_template_syntax,
    scan_string,
    walk_strings,
)
from kestra_trio.model.workflow import SUBFLOW_TYPE

__all__ = [
    "ID_PATTERN",
    "MAX_ATTEMPTS",
    "MAX_PROCESSES",
    "MAX_SIZE",
    "NAMESPACE_PATTERN",
    "TYPE_PATTERN",
    "SourceMap",
    "ValidationIssue",
    "join_path",
    "validate_document",
    "workflow_json_schema",
]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
NAMESPACE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
TYPE_PATTERN = r"^[a-z0-9-]+/[a-z0-9-]+\.[a-z0-9-]+$"
_ID = re.compile(ID_PATTERN)
_NAMESPACE = re.compile(NAMESPACE_PATTERN)
_TYPE = re.compile(TYPE_PATTERN)
_LAST_SEGMENT = re.compile(r'(?:\.[A-Za-z0-9_-]+|\[\d+\]|\["(?:[^"\\]|\\.)*"\])$')

TOP_KEYS = (
    "id", "namespace", "description", "enabled", "trigger", "inputs", "timeout", "security", "permissions", "sandbox",
    "image", "tasks",
)
TASK_KEYS = ("id", "type", "inputs", "needs", "retry", "timeout", "description", "sandbox", "image")
#: issue 11's keys (flow control, context, service), checked in flow_checks.py
FLOW_TOP_KEYS = ("apiVersion", "version", "variables", "outputs", "labels", "errors", "finally", "triggers", "concurrency")
FLOW_TASK_KEYS = ("run_if", "for_each", "concurrency", "allow_failure")
RETRY_KEYS = ("max", "backoff", "delay", "max_delay")
BACKOFF_KEYS = ("type", "delay", "max_delay")
INPUT_KEYS = ("name", "type", "default", "required", "description")
PERMISSION_KEYS = ("network", "filesystem", "env", "resources")
FILESYSTEM_KEYS = ("read", "write")
RESOURCE_KEYS = ("memory", "cpu_seconds", "processes", "file_size")
SANDBOX_KINDS = ("bubblewrap", "docker")
#: `api.example.com`, `*.example.com`, `127.0.0.1:8080`, `[::1]:8080` (no port: 80 and 443)
HOST_PATTERN = r"^(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_HOST = re.compile(HOST_PATTERN)
_ENV_NAME = re.compile(ENV_NAME_PATTERN)
INPUT_TYPES = ("string", "integer", "number", "boolean", "json")
SECURITY_MODES = ("trusted", "restricted")
BACKOFF_TYPES = ("constant", "exponential")
#: `retry.max`: each attempt is a stored row with its own logs; a task that needs more
#: attempts than this is polling, which a loop inside the task does better
MAX_ATTEMPTS = 1000
#: `permissions.resources.processes`: Linux's largest pid_max
MAX_PROCESSES = 4_194_304
#: `permissions.resources.memory` / `file_size`: 1024Ti (1 PiB)
MAX_SIZE = 1024**5

SECRETS_MESSAGE = (
    "secrets never live in a workflow file; use {{ secrets.NAME }} with KESTRA_TRIO_SECRET_NAME"
)


@dataclass(frozen=True, slots=True, order=True)
class ValidationIssue:
    """One problem, located in the file (line and column are 1-based)."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of a document starts, by field path.

    Paths look like `tasks[2].inputs.command`; a path that is not recorded (a missing key,
    a value reached through an alias) falls back to its nearest recorded parent.
    """

    values: dict[str, tuple[int, int]] = field(default_factory=dict)
    keys: dict[str, tuple[int, int]] = field(default_factory=dict)

    def value_at(self, path: str) -> tuple[int, int]:
        return self._lookup(self.values, path)

    def key_at(self, path: str) -> tuple[int, int]:
        if path in self.keys:
            return self.keys[path]
        return self._lookup(self.values, path)

    def _lookup(self, table: Mapping[str, tuple[int, int]], path: str) -> tuple[int, int]:
        while True:
            if path in table:
                return table[path]
            if path in self.keys:
                return self.keys[path]
            if not path:
                return (1, 1)
            path = _parent_path(path)


def _parent_path(path: str) -> str:
    match = _LAST_SEGMENT.search(path)
    return path[: match.start()] if match else ""


def validate_document(
    data: Any,
    positions: SourceMap | Mapping[str, tuple[int, int]] | None,
    filename: str,
    catalog: ActionCatalog | None = None,
) -> list[ValidationIssue]:
    """Check a loaded document and return every problem, sorted by line and column.

    Args:
        data: the parsed YAML (plain dicts, lists and scalars).
        positions: a SourceMap from loading, or a plain `{path: (line, column)}` mapping.
        filename: shown at the start of each issue.
        catalog: when given, task types and task inputs are checked against the plugins.
    """
    if isinstance(positions, SourceMap):
        source = positions
    else:
        source = SourceMap(values=dict(positions or {}))
    checker = _Checker(filename, source, catalog)
    checker.check_document(data)
    return sorted(set(checker.issues))


# -- the checker ---------------------------------------------------------------------------


def _kind_for_boolean(value: Any) -> str:
    """`_kind`, saying why `yes` is not a boolean: workflows are read with YAML 1.2's booleans."""
    if isinstance(value, str) and value.lower() in _YAML_1_1_BOOLEANS:
        return f"the text {value!r} (only true and false are booleans)"
    return _kind(value)


_YAML_1_1_BOOLEANS = frozenset({"yes", "no", "on", "off", "y", "n"})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "integer": _is_int,
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "json": lambda v: True,
}
_TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false"}


@dataclass
class _Task:
    """What later checks need to know about one task entry."""

    index: int
    path: str
    id: str | None
    needs: list[tuple[str, str]] = field(default_factory=list)  # (need, path of that list item)
    inputs: Any = None
    phase: TaskPhase = "tasks"
    run_if: Any = None
    for_each: Any = None


class _Checker(FlowChecks):
    def __init__(self, filename: str, source: SourceMap, catalog: ActionCatalog | None) -> None:
        self.filename = filename
        self.source = source
        self.catalog = catalog
        self.issues: list[ValidationIssue] = []
        #: task ids already reported as malformed: a need naming one is not "unknown" too
        self.malformed_ids: set[str] = set()
        #: the workflow's security mode, for task-level sandbox keys (None: invalid)
        self.security: str | None = "trusted"

    # reporting
    def add(self, path: str, message: str, *, at_key: bool = False) -> None:
        line, column = self.source.key_at(path) if at_key else self.source.value_at(path)
        self.issues.append(ValidationIssue(self.filename, line, column, path, message))

    # generic shape checks
    def mapping(self, value: Any, path: str, what: str) -> bool:
        if isinstance(value, dict):
            return True
        self.add(path, f"must be a mapping ({what}), got {_kind(value)}")
        return False

    def keys(self, value: dict[str, Any], path: str, allowed: Sequence[str], required: Sequence[str] = ()) -> None:
        for key in value:
            if key not in allowed:
                name = str(key)  # YAML keys are text; a caller's dict may hold anything
                hint = _suggest(name, allowed) or f" (allowed: {', '.join(allowed)})"
                self.add(join_path(path, name), f"unknown key {name!r}{hint}", at_key=True)
        for key in required:
            if key not in value:
                self.add(path, f"missing required key {key!r}", at_key=True)

    def string(self, value: dict[str, Any], key: str, path: str) -> str | None:
        if key not in value:
            return None
        item = value[key]
        if isinstance(item, str):
            return item
        self.add(join_path(path, key), f"must be a string, got {_kind(item)}")
        return None

    def identifier(self, value: dict[str, Any], key: str, path: str, what: str) -> str | None:
        text = self.string(value, key, path)
        if text is not None and not _ID.fullmatch(text):
            bad = sorted({c for c in text if not (c.isascii() and (c.isalnum() or c in "_-"))})
            if not text:
                problem = "must not be empty"
            elif bad:  # say which characters, rather than the whole rule
                problem = "may use only letters, digits, '_' and '-' (not " + ", ".join(repr(c) for c in bad) + ")"
            else:
                problem = "must start with a letter or digit"
            self.add(join_path(path, key), f"{what} {text!r} {problem}")
            return None
        return text

    def boolean(self, value: dict[str, Any], key: str, path: str) -> None:
        if key in value and not isinstance(value[key], bool):
            self.add(join_path(path, key), f"must be true or false, got {_kind_for_boolean(value[key])}")

    def choice(self, value: dict[str, Any], key: str, path: str, choices: Sequence[str]) -> str | None:
        if key not in value:
            return None
        item = value[key]
        if isinstance(item, str) and item in choices:
            return item
        got = repr(item) if isinstance(item, str) else _kind(item)
        hint = _suggest(item, choices) if isinstance(item, str) else ""
        self.add(join_path(path, key), f"must be one of {', '.join(choices)}, got {got}{hint}")
        return None

    def duration(self, value: dict[str, Any], key: str, path: str, *, allow_zero: bool = False) -> float | None:
        if key not in value:
            return None
        where = join_path(path, key)
        item = value[key]
        if not isinstance(item, (str, int, float)) or isinstance(item, bool):
            self.add(where, f"must be a duration such as 500ms, 30s, 5m, 2h, 1d, got {_kind(item)}")
            return None
        try:
            seconds = parse_duration(item)
        except ValueError as exc:
            self.add(where, str(exc))
            return None
        if seconds == 0 and not allow_zero:
            self.add(where, "must be longer than 0s")
            return None
        if 0 < seconds < 0.001:
            self.add(where, "must be at least 1ms")
            return None
        return seconds

    def string_list(self, value: dict[str, Any], key: str, path: str, what: str) -> list[str]:
        if key not in value:
            return []
        where = join_path(path, key)
        items = value[key]
        if not isinstance(items, list):
            self.add(where, f"must be a list of {what}, got {_kind(items)}")
            return []
        result = []
        for index, item in enumerate(items):
            if isinstance(item, str):
                result.append(item)
            else:
                self.add(join_path(where, index), f"must be a string ({what}), got {_kind(item)}")
        return result

    # the document
    def check_document(self, data: Any) -> None:
        if not isinstance(data, dict):
            self.add("", f"top level must be a mapping (id, tasks, ...), got {_kind(data)}")
            return
        if "secrets" in data:
            self.add("secrets", SECRETS_MESSAGE, at_key=True)
        self.keys({k: v for k, v in data.items() if k != "secrets"}, "", TOP_KEYS + FLOW_TOP_KEYS, required=("id", "tasks"))
        self.identifier(data, "id", "", "workflow id")
        namespace = self.string(data, "namespace", "")
        if namespace is not None and not _NAMESPACE.fullmatch(namespace):
            self.add("namespace", f"namespace {namespace!r} must use only letters, digits, '.', '_' and '-'")
        self.string(data, "description", "")
        self.boolean(data, "enabled", "")
        self.duration(data, "timeout", "")
        security = self.choice(data, "security", "", SECURITY_MODES) if "security" in data else "trusted"
        self.security = security
        self.check_sandbox(data, "", security)
        if "permissions" in data:
            self.check_permissions(data["permissions"])
        input_names = self.check_inputs(data["inputs"]) if "inputs" in data else set()
        self.check_version(data)
        triggers = self.check_triggers(data)
        if "labels" in data:
            self.check_labels(data)
        if "concurrency" in data:
            self.check_concurrency(data)
        variables = self.named_values(data, "variables", "variable") if "variables" in data else {}
        outputs = self.named_values(data, "outputs", "output") if "outputs" in data else {}
        seen: dict[str, str] = {}
        phases: dict[TaskPhase, list[_Task]] = {}
        for phase, key in (("tasks", "tasks"), ("errors", "errors"), ("finally", "finally")):
            if key in data:
                phases[phase] = self.check_tasks(data[key], key, phase, seen)  # type: ignore[arg-type]
        self.check_graph(phases, input_names, variables, outputs, triggers)
        self.check_docker_images(data)
        self.storable_integers(data)

    def check_docker_images(self, data: dict[str, Any]) -> None:
        """A task that runs in a docker sandbox needs an image (its own or the workflow's)."""
        if data.get("security") != "restricted":
            return
        for key in ("tasks", "errors", "finally"):
            if not isinstance(data.get(key), list):
                continue
            for index, task in enumerate(data[key]):
                if not isinstance(task, dict):
                    continue
                if task.get("sandbox", data.get("sandbox")) == "docker" and not (task.get("image") or data.get("image")):
                    where = join_path(join_path(key, index), "sandbox") if "sandbox" in task else "sandbox"
                    self.add(where, "a docker sandbox needs an image: set image: (e.g. image: python:3.12-slim) on the task or the workflow")

    def check_permissions(self, permissions: Any) -> None:
        if not self.mapping(permissions, "permissions", "network, filesystem, env"):
            return
        self.keys(permissions, "permissions", PERMISSION_KEYS)
        for index, host in enumerate(self.string_list(permissions, "network", "permissions", "host names")):
            port = host.rpartition(":")[2] if host.count(":") == 1 or host.startswith("[") else ""
            if not _HOST.fullmatch(host) or (port.isdigit() and not 0 < int(port) < 65536):
                self.add(
                    f"permissions.network[{index}]",
                    f"{host!r} is not a host: write a name or address, optionally with :port "
                    "(api.example.com, *.example.com, 127.0.0.1:8080)",
                )
        for index, name in enumerate(self.string_list(permissions, "env", "permissions", "environment variable names")):
            if not _ENV_NAME.fullmatch(name):
                self.add(f"permissions.env[{index}]", f"{name!r} is not an environment variable name (letters, digits, '_')")
        filesystem = permissions.get("filesystem")
        if filesystem is not None or "filesystem" in permissions:
            if self.mapping(filesystem, "permissions.filesystem", "read: [paths], write: [paths]"):
                self.keys(filesystem, "permissions.filesystem", FILESYSTEM_KEYS)
                for key in FILESYSTEM_KEYS:
                    where = f"permissions.filesystem.{key}"
                    for index, item in enumerate(self.string_list(filesystem, key, "permissions.filesystem", "paths")):
                        if not item.startswith("/") or "\0" in item:
                            self.add(f"{where}[{index}]", f"{item!r} must be an absolute path (starting with /)")
                        elif any(part == ".." for part in item.split("/")):
                            self.add(f"{where}[{index}]", f"{item!r} must not contain '..'")
        if "resources" in permissions:
            self.check_resources(permissions["resources"])

    def check_resources(self, resources: Any) -> None:
        path = "permissions.resources"
        if not self.mapping(resources, path, "memory, cpu_seconds, processes, file_size"):
            return
        self.keys(resources, path, RESOURCE_KEYS)
        for key in ("memory", "file_size"):
            if key in resources:
                try:
                    size = parse_size(resources[key]) if isinstance(resources[key], (str, int)) else None
                except ValueError as exc:
                    self.add(join_path(path, key), str(exc))
                    continue
                if size is None:
                    self.add(join_path(path, key), f"must be a size such as 256Mi, 1Gi or 100M, got {_kind(resources[key])}")
                elif size < 1024 * 1024:
                    self.add(join_path(path, key), "must be at least 1Mi (a plugin cannot start with less)")
                elif size > MAX_SIZE:
                    self.add(join_path(path, key), "must be at most 1024Ti")
        if "processes" in resources:
            value = resources["processes"]
            if not _is_int(value) or not 1 <= value <= MAX_PROCESSES:
                self.add(join_path(path, "processes"), f"must be a whole number from 1 to {MAX_PROCESSES}, got {value!r}")
        if "cpu_seconds" in resources:
            value = resources["cpu_seconds"]
            if not _is_number(value) or not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
                self.add(join_path(path, "cpu_seconds"), f"must be a number of seconds above 0, at most {MAX_SECONDS:.0f} (10 years), got {value!r}")

    def check_sandbox(self, data: dict[str, Any], path: str, security: str | None) -> None:
        """`sandbox` and `image` (workflow or task level): only with security: restricted."""
        self.choice(data, "sandbox", path, SANDBOX_KINDS)
        image = self.string(data, "image", path)
        if image is not None and (not image.strip() or any(c.isspace() for c in image)):
            self.add(join_path(path, "image"), f"{image!r} is not an image name (e.g. python:3.12-slim)")
        if security is not None and security != "restricted":
            for key in ("sandbox", "image"):
                if key in data:
                    self.add(join_path(path, key), f"{key} is used only with security: restricted (set it at the top)", at_key=True)

    def check_inputs(self, declarations: Any) -> set[str]:
        """Check `inputs:` declarations; returns the declared names (even of broken entries)."""
        names: dict[str, str] = {}
        if not isinstance(declarations, list):
            self.add("inputs", f"must be a list of input declarations (- name: ..., type: ...), got {_kind(declarations)}")
            return set()
        for index, declaration in enumerate(declarations):
            path = join_path("inputs", index)
            if not self.mapping(declaration, path, "name, type, default, required, description"):
                continue
            self.keys(declaration, path, INPUT_KEYS, required=("name",))
            name = self.identifier(declaration, "name", path, "input name")
            if name is not None:
                if name in names:
                    self.add(join_path(path, "name"), f"duplicate input name {name!r} (first declared at {names[name]})")
                else:
                    names[name] = join_path(path, "name")
            input_type = self.choice(declaration, "type", path, INPUT_TYPES)
            if "type" not in declaration:
                input_type = "string"
            self.boolean(declaration, "required", path)
            self.string(declaration, "description", path)
            if "default" in declaration and input_type is not None:
                default = declaration["default"]
                if not _TYPE_CHECKS[input_type](default):
                    self.add(
                        join_path(path, "default"),
                        f"default must be {_TYPE_WORDS[input_type]} (the input's type is {input_type}), "
                        f"got {_kind_for_boolean(default) if input_type == 'boolean' else _kind(default)}",
                    )
                else:
                    self.finite_numbers(default, join_path(path, "default"))
        return set(names)

    def check_tasks(self, tasks: Any, key: str, phase: TaskPhase, seen: dict[str, str]) -> list[_Task]:
        """One task list (`tasks:`, `errors:`, `finally:`); ids are unique across all three."""
        example = "(- id: ..., type: ...)"
        if not isinstance(tasks, list):
            self.add(key, f"must be a list of tasks {example}, got {_kind(tasks)}")
            return []
        if not tasks:
            if phase == "tasks":
                self.add(key, "a workflow needs at least one task")
            else:
                self.add(key, f"{key}: has no tasks; remove it or add some")
            return []
        result = []
        for index, task in enumerate(tasks):
            path = join_path(key, index)
            if not isinstance(task, dict):
                self.add(path, f"each task must be a mapping with id and type, got {_kind(task)}")
                continue
            result.append(self.check_task(task, index, path, seen, phase))
        return result

    def check_task(self, task: dict[str, Any], index: int, path: str, seen: dict[str, str], phase: TaskPhase = "tasks") -> _Task:
        self.keys(task, path, TASK_KEYS + FLOW_TASK_KEYS, required=("id", "type"))
        task_id = self.identifier(task, "id", path, "task id")
        written = task.get("id")
        if task_id is None and isinstance(written, str):
            self.malformed_ids.add(written)
        if task_id is not None:
            if task_id in seen:
                line = self.source.value_at(seen[task_id])[0]
                self.add(join_path(path, "id"), f"duplicate task id {task_id!r} (first used on line {line})")
                task_id = None
            else:
                seen[task_id] = join_path(path, "id")
        task_type = self.string(task, "type", path)
        type_ok = task_type is not None and _TYPE.fullmatch(task_type) is not None
        if task_type is not None and not type_ok:
            self.add(join_path(path, "type"), "must match namespace/plugin.action (e.g. core/shell.run)")
        inputs = task.get("inputs")
        if "inputs" in task and not isinstance(inputs, dict):
            self.add(join_path(path, "inputs"), f"must be a mapping of input names to values, got {_kind(inputs)}")
            inputs = None
        if inputs:
            self.finite_numbers(inputs, join_path(path, "inputs"))
        self.string(task, "description", path)
        self.duration(task, "timeout", path)
        if "retry" in task:
            self.check_retry(task["retry"], join_path(path, "retry"))
        self.check_sandbox(task, path, self.security)
        needs = self.needs_of(task, path)
        self.check_task_flow(task, path, task_type)
        inputs_ok = "inputs" not in task or inputs is not None
        if task_type == SUBFLOW_TYPE:
            if inputs_ok:
                for where, message in _schema_problems(SUBFLOW_INPUT_SCHEMA, inputs or {}):
                    self.add(join_path(path, "inputs") + where, message)
        elif type_ok and self.catalog is not None:
            self.check_against_catalog(task_type, inputs, path, inputs_ok=inputs_ok)  # type: ignore[arg-type]
        return _Task(
            index=index, path=path, id=task_id, needs=needs, inputs=inputs, phase=phase,
            run_if=task.get("run_if"), for_each=task.get("for_each"),
        )

    def finite_numbers(self, value: Any, path: str) -> None:
        """`.nan`, `.inf` and 1e400 are YAML numbers but not JSON: they would be stored as
        NaN / Infinity, which no JSON reader accepts."""
        stack = [(value, path)]
        while stack:
            item, where = stack.pop()
            if isinstance(item, float) and not math.isfinite(item):
                self.add(where, f"{item} is not a finite number (NaN and infinity cannot be stored as JSON)")
            elif isinstance(item, dict):
                stack.extend((v, join_path(where, k)) for k, v in item.items())
            elif isinstance(item, list):
                stack.extend((v, join_path(where, i)) for i, v in enumerate(item))

    def storable_integers(self, data: Any) -> None:
        """The safety net under the specific bounds: no integer anywhere in the document may be
        outside SQLite's INTEGER (signed 64-bit), where it could be neither stored nor read back
        by another JSON reader. Keys included (YAML allows `{99999999999999999999: x}`). Runs last:
        a value a specific check already refused (`retry.max`) is not reported twice."""
        reported = {issue.path for issue in self.issues}
        stack: list[tuple[Any, str]] = [(data, "")]
        while stack:
            item, where = stack.pop()
            if isinstance(item, dict):
                for key, value in item.items():
                    if _is_int(key) and not INT64_MIN <= key <= INT64_MAX and join_path(where, str(key)) not in reported:
                        self.add(join_path(where, str(key)), _too_large(key), at_key=True)
                    stack.append((value, join_path(where, str(key))))
            elif isinstance(item, list):
                stack.extend((v, join_path(where, i)) for i, v in enumerate(item))
            elif _is_int(item) and not INT64_MIN <= item <= INT64_MAX and where not in reported:
                self.add(where, _too_large(item))

    def needs_of(self, task: dict[str, Any], path: str) -> list[tuple[str, str]]:
        if "needs" not in task:
            return []
        where = join_path(path, "needs")
        items = task["needs"]
        if not isinstance(items, list):
            self.add(where, f"must be a list of task ids (e.g. needs: [extract]), got {_kind(items)}")
            return []
        needs = []
        listed: set[str] = set()
        for index, item in enumerate(items):
            if isinstance(item, str) and item in listed:
                self.add(join_path(where, index), f"task {item!r} is listed twice")
            elif isinstance(item, str):
                listed.add(item)
                needs.append((item, join_path(where, index)))
            else:
                self.add(join_path(where, index), f"must be a task id, got {_kind(item)}")
        return needs

    def check_retry(self, retry: Any, path: str) -> None:
        if not self.mapping(retry, path, "max, backoff, delay, max_delay"):
            return
        self.keys(retry, path, RETRY_KEYS)
        if "max" in retry:
            attempts = retry["max"]
            if not _is_int(attempts):
                self.add(join_path(path, "max"), f"must be a whole number of attempts (1 = no retry), got {_kind(attempts)}")
            elif attempts < 1:
                self.add(join_path(path, "max"), f"must be at least 1 (the total number of attempts), got {attempts}")
            elif attempts > MAX_ATTEMPTS:
                self.add(join_path(path, "max"), f"must be at most {MAX_ATTEMPTS} attempts, got {attempts}")
        backoff = retry.get("backoff")
        if isinstance(backoff, dict):
            # the long form: backoff: {type: exponential, delay: 200ms, max_delay: 2s}
            bpath = join_path(path, "backoff")
            self.keys(backoff, bpath, BACKOFF_KEYS)
            for key in ("delay", "max_delay"):
                if key in backoff and key in retry:
                    self.add(join_path(path, key), f"set {key} once: either under retry or under retry.backoff")
            self.choice(backoff, "type", bpath, BACKOFF_TYPES)
            holder, hpath = {**retry, **backoff}, bpath
        else:
            self.choice(retry, "backoff", path, BACKOFF_TYPES)
            holder, hpath = retry, path
        delay = self.duration(holder, "delay", hpath, allow_zero=True) if "delay" in holder else None
        max_delay = self.duration(holder, "max_delay", hpath) if "max_delay" in holder else None
        if delay is not None and max_delay is not None and delay > max_delay:
            self.add(join_path(hpath, "delay"), "delay must not be longer than max_delay")

    def check_against_catalog(self, task_type: str, inputs: dict[str, Any] | None, path: str, *, inputs_ok: bool) -> None:
        assert self.catalog is not None
        try:
            schema = self.catalog.input_schema(task_type)
        except LookupError as exc:
            message = str(exc.args[0]) if exc.args else f"unknown task type {task_type!r}"
            if "did you mean" not in message and "manifest" not in message:
                message += _suggest(task_type, self.catalog.known_types())
            self.add(join_path(path, "type"), message)
            return
        if schema is not None and inputs_ok:
            for where, message in _schema_problems(schema, inputs or {}):
                self.add(join_path(path, "inputs") + where, message)

    # cross-task checks
    def check_graph(
        self,
        phases: Mapping[TaskPhase, list[_Task]],
        input_names: set[str],
        variables: Mapping[str, Any],
        outputs: Mapping[str, Any],
        triggers: list[tuple[str, dict[str, Any]]],
    ) -> None:
        """Needs (within each phase), cycles, and every template against its scope."""
        phase_of: dict[str, TaskPhase] = {
            task.id: phase for phase, tasks in phases.items() for task in tasks if task.id is not None
        }
        graph: dict[str, list[str]] = {}
        for phase, tasks in phases.items():
            ids = {task.id for task in tasks if task.id is not None}
            for task in tasks:
                known = []
                for need, where in task.needs:
                    if need == task.id:
                        self.add(where, f"task {need!r} cannot need itself")
                    elif need in self.malformed_ids:
                        pass  # its id is reported where it is written
                    elif need in ids:
                        known.append(need)
                    elif need in phase_of:
                        self.add(where, _cross_phase_need(need, phase_of[need], phase))
                    else:
                        self.add(where, f"unknown task {need!r}{_suggest(need, ids)}")
                if task.id is not None:
                    graph[task.id] = known
            paths = {task.id: task.path for task in tasks if task.id is not None}
            for cycle in find_cycles({tid: graph[tid] for tid in paths}):
                if len(cycle) > 2:  # a task needing itself is reported above
                    self.add(join_path(paths[cycle[0]], "needs"), "dependency cycle (each task needs the next): " + " -> ".join(cycle))
        upstream = _Upstream(graph)
        names = TemplateNames(frozenset(input_names), variables, phase_of, upstream.has)
        for phase, tasks in phases.items():
            for task in tasks:
                for_each = task.for_each is not None
                if task.inputs is not None:
                    self.check_templates(task.inputs, join_path(task.path, "inputs"), Scope.task_inputs(task.id, phase, for_each=for_each), names)
                if isinstance(task.run_if, str):
                    self.check_templates(task.run_if, join_path(task.path, "run_if"), Scope.task_condition("run_if", task.id, phase), names)
                if isinstance(task.for_each, (str, list)):
                    self.check_templates(task.for_each, join_path(task.path, "for_each"), Scope.task_condition("for_each", task.id, phase), names)
        if variables:
            self.check_templates(variables, "variables", VARIABLES, names)
        if outputs:
            self.check_templates(outputs, "outputs", WORKFLOW_OUTPUTS, names)
        for path, trigger in triggers:
            self.check_trigger_inputs(trigger.get("inputs"), join_path(path, "inputs"), input_names, names)

    def check_trigger_inputs(self, inputs: Any, path: str, input_names: set[str], names: TemplateNames) -> None:
        if not isinstance(inputs, dict):
            return
        for name in inputs:
            if name not in input_names:
                hint = _suggest(str(name), input_names) or " (declare it under inputs:)"
                self.add(join_path(path, str(name)), f"input {name!r} is not declared{hint}", at_key=True)
        self.finite_numbers(inputs, path)
        self.check_templates(inputs, path, TRIGGER_INPUTS, names)

    def check_templates(self, value: Any, base: str, scope: Scope, names: TemplateNames) -> None:
        for parts, text in walk_strings(value):
            if not has_template_syntax(text):
                continue
            where = base
            for part in parts:
                where = join_path(where, part)
            for item in scan_string(text):
                if isinstance(item, UnsupportedTemplate):
                    self.add(where, str(item))
                elif isinstance(item, TemplateError):
                    self.add(where, f"malformed template: {item}")
                else:
                    problem = reference_problem(item, scope, names)
                    if problem:
                        self.add(where, problem)


def _too_large(number: int) -> str:
    digits = len(str(abs(number)))
    return f"the integer {str(number)[:12]}... ({digits} digits) is out of range: whole numbers must be between -2^63 and 2^63-1"


def _cross_phase_need(need: str, need_phase: str, phase: str) -> str:
    if phase == "tasks":
        return f"task {need!r} is in {need_phase}:; a task of tasks: cannot need it"
    if need_phase == "tasks":
        return (
            f"{phase}: tasks can only need other {phase}: tasks ({need!r} is in tasks:, "
            f"which is done before {phase}: starts; its outputs can be used without needs)"
        )
    return f"{phase}: tasks can only need other {phase}: tasks ({need!r} is in {need_phase}:)"


class _Upstream:
    """Which tasks each task (transitively) needs, as one bit per task, built once and shared:
    a search per template reference made a 6,000-task templated chain quadratic (3 s)."""

    def __init__(self, graph: Mapping[str, list[str]]) -> None:
        self.graph = graph
        self._bit = {task_id: 1 << index for index, task_id in enumerate(graph)}
        self._above: dict[str, int] = {}

    def has(self, task_id: str, target: str) -> bool:
        if target in self.graph.get(task_id, ()):
            return True  # the usual case: a direct need
        return bool(self._ancestors(task_id) & self._bit.get(target, 0))

    def _ancestors(self, task_id: str) -> int:
        # iterative post-order (a 10,000-deep chain must not hit the recursion limit); a task
        # met again while still open is part of a cycle, reported elsewhere: it adds nothing
        stack = [task_id]
        opened: set[str] = set()
        while stack:
            node = stack[-1]
            if node in self._above:
                stack.pop()
                continue
            needs = [n for n in self.graph.get(node, ()) if n in self._bit]
            if node not in opened:
                opened.add(node)
                stack.extend(n for n in needs if n not in self._above and n not in opened)
                continue
            bits = 0
            for need in needs:
                bits |= self._bit[need] | self._above.get(need, 0)
            self._above[node] = bits
            stack.pop()
        return self._above[task_id]


# -- plugin input schemas --------------------------------------------------------------------


_VALIDATORS: dict[int, tuple[Mapping[str, Any], Any]] = {}


def _validator_for(schema: Mapping[str, Any]) -> Any:
    """One checked validator per schema object: checking a schema costs ~2 ms, and a
    1,000-task workflow uses the same few schemas a thousand times."""
    import jsonschema

    cached = _VALIDATORS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    _VALIDATORS[id(schema)] = (schema, validator)  # keeps `schema` alive, so the id stays unique
    return validator


def _schema_problems(schema: Mapping[str, Any], inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Friendly `(path suffix, message)` pairs for inputs that break the action's schema.

    Values containing template syntax (`{{`, `{%`) are only known at run time: errors on
    them (or on a choice between alternatives that contains one) are skipped; the rest is
    still checked.
    """
    import jsonschema

    templated = [tuple(parts) for parts, text in walk_strings(inputs) if "{{" in text or "{%" in text]
    try:
        validator = _validator_for(schema)
    except jsonschema.SchemaError as exc:
        return [("", f"the plugin's input schema is invalid ({exc.message}); report it to the plugin author")]
    errors = list(validator.iter_errors(dict(inputs)))
    problems = []
    for error in errors:
        error_path = tuple(error.absolute_path)
        if any(error_path[: len(t)] == t for t in templated):
            continue
        if error.validator in ("anyOf", "oneOf", "allOf", "not", "if") and any(
            t[: len(error_path)] == error_path for t in templated
        ):
            continue
        problems.append((_path_suffix(error_path), _schema_message(error)))
    return problems


def _path_suffix(parts: Sequence[str | int]) -> str:
    """`("env", "HOME")` -> `.env.HOME`, to append to `tasks[0].inputs`."""
    path = "_"
    for part in parts:
        path = join_path(path, part)
    return path[1:]


def _schema_message(error: Any) -> str:
    """One friendly line for a jsonschema ValidationError."""
    validator, expected, instance = error.validator, error.validator_value, error.instance
    if validator == "required":
        missing = [name for name in expected if isinstance(instance, dict) and name not in instance]
        return f"missing required input {missing[0]!r}" if missing else "missing a required input"
    if validator == "additionalProperties" and isinstance(instance, dict):
        known = list(error.schema.get("properties", {}))
        extra = [key for key in instance if key not in known]
        name = extra[0] if extra else "?"
        hint = _suggest(name, known) or (f" (known: {', '.join(known)})" if known else "")
        return f"unknown input {name!r}{hint}"
    if validator == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        got = _kind_for_boolean(instance) if "boolean" in kinds else _kind(instance)
        return f"must be {' or '.join(_JSON_TYPE_WORDS.get(k, k) for k in kinds)}, got {got}"
    if validator == "enum":
        return f"must be one of {', '.join(str(v) for v in expected)}, got {instance!r}"
    if validator in ("anyOf", "oneOf"):
        return _alternatives_message(validator, expected, instance)
    text = " ".join(str(error.message).split())
    return text if len(text) <= 160 else text[:157] + "..."


def _alternatives_message(validator: str, alternatives: Any, instance: Any) -> str:
    """`oneOf: [{required: [command]}, {required: [argv]}]` -> "needs exactly one of: command, argv"."""
    required = [alt.get("required") for alt in alternatives if isinstance(alt, dict)]
    if required and all(isinstance(names, list) and len(names) == 1 for names in required):
        names = [names[0] for names in required]
        given = [name for name in names if isinstance(instance, dict) and name in instance]
        if validator == "oneOf" and len(given) > 1:
            return f"give only one of: {', '.join(names)} (got {', '.join(given)})"
        return f"needs {'exactly ' if validator == 'oneOf' else ''}one of: {', '.join(names)}"
    return "does not match any accepted form of this action's inputs; see `kestra-trio plugin list`"


_JSON_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


# -- the published JSON Schema ---------------------------------------------------------------


def _list_of_strings(description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, "description": description}


_DURATION: dict[str, Any] = {
    "description": "A duration: 500ms, 30s, 5m, 2h, 1d, a compound such as 1m30s, or a number of seconds.",
    "oneOf": [
        {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*)+$"},
        {"type": "number", "minimum": 0},
    ],
}


_SIZE: dict[str, Any] = {
    "description": "A size: 256Mi, 1Gi (1024-based), 100M (1000-based), or a number of bytes.",
    "oneOf": [{"type": "string", "pattern": SIZE_PATTERN}, {"type": "integer", "minimum": 0}],
}
_SANDBOX: dict[str, Any] = {
    "enum": list(SANDBOX_KINDS),
    "description": "What isolates restricted tasks: bubblewrap (namespaces on this machine) or docker (a container of image).",
}
_IMAGE: dict[str, Any] = {"type": "string", "pattern": r"^\S+$", "description": "The container image of a docker sandbox."}


def workflow_json_schema() -> dict[str, Any]:
    """The workflow DSL as a JSON Schema (draft 2020-12), for editors and `kestra-trio schema`.

    It describes the shape; cross-field rules (cycles, unknown needs, template references,
    plugin inputs) are only checked by `kestra-trio validate`.
    """
    identifier = {"type": "string", "pattern": ID_PATTERN}
    task = {
        "type": "object",
        "description": "One step of the workflow, run by a plugin action.",
        "additionalProperties": False,
        "required": ["id", "type"],
        "properties": {
            "id": {**identifier, "description": "Unique task id; other tasks use it in needs and {{ tasks.ID.outputs }}."},
            "type": {
                "type": "string",
                "pattern": TYPE_PATTERN,
                "description": "The plugin action that runs this task: namespace/plugin.action, e.g. core/shell.run.",
                "examples": ["core/shell.run", "core/log.message", "core/python.script", "core/http.request", "core/util.sleep", "core/util.fail"],
            },
            "description": {"type": "string", "description": "Free text shown by inspect."},
            "inputs": {
                "type": "object",
                "description": "Inputs of the action (its plugin defines them). Strings may contain {{ inputs.NAME }}, {{ tasks.ID.outputs.KEY }} and {{ secrets.NAME }}.",
            },
            "needs": {
                "type": "array",
                "items": identifier,
                "uniqueItems": True,
                "description": "Task ids that must succeed before this task starts.",
            },
            "retry": {
                "type": "object",
                "description": "How often to try the task; without it the task runs once.",
                "additionalProperties": False,
                "properties": {
                    "max": {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS, "description": "Total number of attempts (1 = no retry)."},
                    "backoff": {
                        "description": "constant: wait delay each time; exponential: delay, 2*delay, 4*delay ... capped by max_delay. Either the type alone or a mapping {type, delay, max_delay}.",
                        "oneOf": [
                            {"enum": list(BACKOFF_TYPES)},
                            {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "type": {"enum": list(BACKOFF_TYPES)},
                                    "delay": _DURATION,
                                    "max_delay": _DURATION,
                                },
                            },
                        ],
                    },
                    "delay": {**_DURATION, "description": "Wait before the second attempt (default 1s). " + _DURATION["description"]},
                    "max_delay": {**_DURATION, "description": "Upper bound of the wait between attempts. " + _DURATION["description"]},
                },
            },
            "timeout": {**_DURATION, "description": "Time limit of each attempt (default: none, or KESTRA_TRIO_DEFAULT_TASK_TIMEOUT). " + _DURATION["description"]},
            "sandbox": {**_SANDBOX, "description": "Overrides the workflow's sandbox for this task (security: restricted)."},
            "image": {**_IMAGE, "description": "Overrides the workflow's image for this task (sandbox: docker)."},
        },
    }
    input_declaration = {
        "type": "object",
        "description": "A run-time input, given with --input NAME=VALUE.",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {**identifier, "description": "Input name, used as {{ inputs.NAME }}."},
            "type": {"enum": list(INPUT_TYPES), "default": "string", "description": "How --input text is converted."},
            "default": {"description": "Value when the input is not given (must match type); makes the input optional."},
            "required": {"type": "boolean", "default": True, "description": "false: the input may be omitted (it is then null)."},
            "description": {"type": "string"},
        },
    }
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "kestra-trio workflow",
        "description": "A kestra-trio workflow file. Check one with `kestra-trio validate FILE`.",
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "tasks"],
        "properties": {
            "id": {**identifier, "description": "Workflow id."},
            "namespace": {"type": "string", "pattern": NAMESPACE_PATTERN, "default": "default", "description": "Groups workflows, e.g. team.project."},
            "description": {"type": "string", "description": "Free text."},
            "enabled": {"type": "boolean", "default": True, "description": "false: the workflow does not run (kestra-trio run refuses it)."},
            "inputs": {"type": "array", "items": input_declaration, "description": "Run-time inputs."},
            "timeout": {**_DURATION, "description": "Time limit of the whole execution. " + _DURATION["description"]},
            "security": {"enum": list(SECURITY_MODES), "default": "trusted", "description": "restricted runs plugins sandboxed with only the permissions below."},
            "permissions": {
                "type": "object",
                "description": "What a restricted workflow's plugins may use.",
                "additionalProperties": False,
                "properties": {
                    "network": {
                        "type": "array",
                        "items": {"type": "string", "pattern": HOST_PATTERN},
                        "description": "Hosts plugins may reach through the engine's proxy: api.example.com (ports 80 and 443), *.example.com, 127.0.0.1:8080.",
                    },
                    "filesystem": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "read": _list_of_strings("Absolute paths plugins may read."),
                            "write": _list_of_strings("Absolute paths plugins may read and write."),
                        },
                    },
                    "env": {
                        "type": "array",
                        "items": {"type": "string", "pattern": ENV_NAME_PATTERN},
                        "description": "Names of the engine's environment variables passed to plugins.",
                    },
                    "resources": {
                        "type": "object",
                        "description": "Limits of each task; going over fails it with reason RESOURCE_LIMIT.",
                        "additionalProperties": False,
                        "properties": {
                            "memory": {**_SIZE, "description": "Memory of the task's processes together (default 1Gi). " + _SIZE["description"]},
                            "cpu_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SECONDS, "description": "CPU time of the task (no default: the timeout bounds it)."},
                            "processes": {"type": "integer", "minimum": 1, "maximum": MAX_PROCESSES, "description": "Processes and threads at once (default 256)."},
                            "file_size": {**_SIZE, "description": "Largest file a plugin may write (default 1Gi). " + _SIZE["description"]},
                        },
                    },
                },
            },
            "sandbox": {**_SANDBOX, "default": "bubblewrap"},
            "image": _IMAGE,
            "tasks": {"type": "array", "minItems": 1, "items": task, "description": "The tasks; they run as soon as everything they need succeeded."},
        },
    }
    return add_flow_schema(schema, task, identifier)
