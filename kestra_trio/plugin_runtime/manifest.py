"""`plugin.yaml`: the manifest model, its loader and its validator.

Every problem in a manifest is reported at once, prefixed with the file, so a plugin author
fixes them in one pass. Unknown fields are warnings (a newer manifest still loads).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from kestra_trio.errors import ManifestInvalid

MANIFEST_NAME = "plugin.yaml"
PYTHON_TOKEN = "{python}"
Runtime = Literal["process", "builtin"]
#: task types the engine can run itself (`runtime: builtin`), skipping an interpreter start
BUILTIN_TYPES = frozenset({"core/shell.run"})

_KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_ACTION = _KEBAB  # task types are ns/plugin.action with [a-z0-9-] only
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_TOP_FIELDS = frozenset(
    {"name", "version", "namespace", "description", "author", "license", "command", "runtime", "actions"}
)
_ACTION_FIELDS = frozenset({"name", "description", "input", "output"})
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action a plugin offers; schemas are JSON Schema documents (None: anything goes)."""

    name: str
    description: str = ""
    input_schema: Mapping[str, Any] | None = None
    output_schema: Mapping[str, Any] | None = None
    #: compiled jsonschema validators, built on first use by process.py
    validators: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class PluginManifest:
    """A loaded, valid `plugin.yaml`."""

    name: str
    namespace: str
    version: str
    folder: Path
    description: str = ""
    author: str = ""
    license: str = ""
    #: the command as written in the manifest
    command: tuple[str, ...] = ()
    #: the command ready to exec: `{python}` → sys.executable, plugin-relative paths made absolute
    argv: tuple[str, ...] = ()
    runtime: Runtime = "process"
    actions: tuple[ActionSpec, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        """``namespace/name``, e.g. ``core/shell``."""
        return f"{self.namespace}/{self.name}"

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST_NAME

    def action(self, name: str) -> ActionSpec | None:
        for spec in self.actions:
            if spec.name == name:
                return spec
        return None

    def task_types(self) -> list[str]:
        return [f"{self.full_name}.{spec.name}" for spec in self.actions]


def resolve_command(command: tuple[str, ...], folder: Path) -> tuple[str, ...]:
    """`{python}` → the engine's own interpreter; relative paths → inside the plugin folder.

    The program (first token) is taken as a path only when it contains a slash (else the
    OS looks it up on PATH); later tokens are made absolute when that file exists in the folder.
    """
    argv: list[str] = []
    for index, token in enumerate(command):
        token = token.replace(PYTHON_TOKEN, sys.executable)
        if not token.startswith(("/", "-")):
            candidate = folder / token
            if ("/" in token and index == 0) or (index > 0 and candidate.exists()):
                token = str(candidate)
        argv.append(token)
    return tuple(argv)


def schema_problem(schema: Mapping[str, Any], where: str) -> str | None:
    """jsonschema's ``check_schema`` as a message (about 2 ms per schema, hence optional)."""
    from jsonschema import exceptions, validators  # deferred: ~70 ms import

    try:
        validators.validator_for(schema).check_schema(schema)
    except exceptions.SchemaError as exc:
        path = "/".join(str(p) for p in exc.absolute_path)
        return f"{where} is not a valid JSON Schema{f' at {path}' if path else ''}: {exc.message}"
    return None


def action_schema_problems(action: ActionSpec, index: int | None = None) -> list[str]:
    """Every invalid schema of one action."""
    label = f"actions[{index}] ({action.name})" if index is not None else f"action {action.name}"
    problems = []
    for kind, schema in (("input", action.input_schema), ("output", action.output_schema)):
        if schema is not None:
            problem = schema_problem(schema, f"{label}.{kind}")
            if problem:
                problems.append(problem)
    return problems


def _schema(schema: object, where: str, problems: list[str]) -> Mapping[str, Any] | None:
    if schema is None:
        return None
    if not isinstance(schema, dict):
        problems.append(f"{where} must be a JSON Schema object")
        return None
    return schema


def _text(raw: Mapping[str, Any], key: str, problems: list[str], *, required: bool = False) -> str:
    value = raw.get(key)
    if value is None:
        if required:
            problems.append(f"{key} is required")
        return ""
    if not isinstance(value, str):
        problems.append(f"{key} must be a string, got {type(value).__name__}")
        return ""
    return value


def _actions(raw: object, problems: list[str], warnings: list[str], check: bool) -> tuple[ActionSpec, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append("actions must be a non-empty list of {name, description, input, output}")
        return ()
    specs: list[ActionSpec] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"actions[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where} must be a mapping")
            continue
        name = item.get("name")
        if not isinstance(name, str) or not _ACTION.match(name):
            problems.append(
                f"{where}.name must be kebab-case (lower-case letters, digits, '-'; e.g. run), got {name!r}: "
                "task types are namespace/plugin.action with those characters only"
            )
            continue
        where = f"actions[{index}] ({name})"
        if name in seen:
            problems.append(f"{where}: duplicate action name")
        seen.add(name)
        for key in sorted(set(item) - _ACTION_FIELDS):
            warnings.append(f"{where}: unknown field {key!r} ignored")
        desc = item.get("description", "")
        if not isinstance(desc, str):
            problems.append(f"{where}.description must be a string")
            desc = ""
        spec = ActionSpec(
            name=name,
            description=desc,
            input_schema=_schema(item.get("input"), f"{where}.input", problems),
            output_schema=_schema(item.get("output"), f"{where}.output", problems),
        )
        if check:
            problems.extend(action_schema_problems(spec, index))
        specs.append(spec)
    return tuple(specs)


def _command(raw: Mapping[str, Any], runtime: str, problems: list[str]) -> tuple[str, ...]:
    command = raw.get("command")
    if command is None:
        if runtime != "builtin":
            problems.append("command is required (an argv list, e.g. ['{python}', 'main.py'])")
        return ()
    if isinstance(command, str):
        problems.append("command must be an argv list, e.g. ['{python}', 'main.py'], not a string")
        return ()
    if not isinstance(command, list) or not command or not all(isinstance(t, str) and t for t in command):
        problems.append("command must be a non-empty list of non-empty strings")
        return ()
    if any("\0" in t for t in command):
        problems.append("command must not contain a NUL byte (\\0)")
        return ()
    return tuple(command)


def parse_manifest(
    raw: object, folder: Path, source: str = MANIFEST_NAME, *, check_schemas: bool = True
) -> PluginManifest:
    """Validate an already-parsed manifest; raises ManifestInvalid listing every problem.

    ``check_schemas=False`` skips jsonschema's ``check_schema`` (the registry checks an
    action's schemas when a workflow first uses it, keeping discovery cheap).
    """
    if not isinstance(raw, dict):
        raise ManifestInvalid(f"{source}: must be a YAML mapping of name, version, namespace, command, actions")
    problems: list[str] = []
    warnings = [f"unknown field {key!r} ignored" for key in sorted(set(raw) - _TOP_FIELDS, key=str)]
    name = _text(raw, "name", problems, required=True)
    namespace = _text(raw, "namespace", problems, required=True)
    version = raw.get("version")
    if version is None:
        problems.append("version is required")
    elif not isinstance(version, str):
        problems.append(f"version must be valid semver (e.g., 1.0.0) written as a quoted string, got {version!r}")
    version = version if isinstance(version, str) else ""
    for key, value in (("name", name), ("namespace", namespace)):
        if value and not _KEBAB.match(value):
            problems.append(f"{key} must be kebab-case (lower-case letters, digits, '-'), got {value!r}")
    if version and not _SEMVER.match(version):
        problems.append(f"version must be valid semver (e.g., 1.0.0), got {version!r}")
    runtime = raw.get("runtime", "process")
    if runtime not in ("process", "builtin"):
        problems.append(f"runtime must be 'process' or 'builtin', got {runtime!r}")
        runtime = "process"
    command = _command(raw, runtime, problems)
    actions = _actions(raw.get("actions"), problems, warnings, check_schemas)
    if runtime == "builtin":
        full = f"{namespace}/{name}"
        unknown = [a.name for a in actions if f"{full}.{a.name}" not in BUILTIN_TYPES]
        if unknown and not command:
            problems.append(
                f"runtime: builtin is only available for {', '.join(sorted(BUILTIN_TYPES))}; "
                f"add a command for {', '.join(unknown)}"
            )
    texts = {key: _text(raw, key, problems) for key in ("description", "author", "license")}
    if problems:
        details = "\n".join(f"  - {p}" for p in problems)
        raise ManifestInvalid(f"{source}: {len(problems)} problem(s):\n{details}")
    return PluginManifest(
        name=name,
        namespace=namespace,
        version=version,
        folder=folder,
        command=command,
        argv=resolve_command(command, folder),
        runtime=runtime,
        actions=actions,
        warnings=tuple(f"{source}: {w}" for w in warnings),
        **texts,
    )


def load_manifest(path: str | Path, *, check_schemas: bool = True) -> PluginManifest:
    """Load ``plugin.yaml`` (or the plugin folder holding it); raises ManifestInvalid."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    folder = path.parent.resolve()
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ManifestInvalid(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 - CSafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestInvalid(f"{path}: not valid YAML{where}: {problem}") from None
    return parse_manifest(raw, folder, str(path), check_schemas=check_schemas)
