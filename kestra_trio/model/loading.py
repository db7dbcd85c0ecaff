"""YAML file -> validated Workflow, keeping line/column of every value for messages.

We build values straight from PyYAML's event stream (libyaml's C parser when present)
instead of `yaml.safe_load`, because that lets us:

* record where each value starts (`tasks[2].type` -> line 14, column 11);
* report duplicate keys instead of silently keeping the last one;
* refuse any tag the safe loader would not build (`!!python/object` ...) with one line;
* read booleans as YAML 1.2's core schema does (as Kestra and most YAML-in-CI tools read
  them): only true/false in any case form; `yes`, `no`, `on`, `off`, `y`, `n` stay text, so
  `id: off` is an id and `command: n` a command;
* stop early on hostile input: nesting deeper than MAX_DEPTH (libyaml's composer would
  crash the interpreter, and its flow scanner is quadratic in depth) or more than
  MAX_VALUES values once aliases are expanded (the "billion laughs").

The nesting limit is ours whatever the parser: the scanner reads up to ~1,000 characters
ahead of the last event it hands over, so a dense run of `[`/`{` can hit the parser's own
limit (libyaml in PyYAML >= 6.0.4 stops at 1,000 flow levels) before we see level 65. When
the parser fails, `_too_deep_offset` counts the flow brackets between the last event and
the failure, and a depth past MAX_DEPTH is reported in our words at the bracket that went
past it — the same place the event check names when the parser gets that far.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kestra_trio.errors import WorkflowError, WorkflowInvalid
from kestra_trio.model.catalog import ActionCatalog
from kestra_trio.model.durations import parse_duration
from kestra_trio.model.sizes import parse_size
from kestra_trio.model.validation import SourceMap, ValidationIssue, join_path, validate_document
from kestra_trio.model.workflow import (
    Concurrency,
    CronTrigger,
    FlowTrigger,
    ForEach,
    InputSpec,
    Permissions,
    Resources,
    RetryPolicy,
    TaskSpec,
    TriggerSpec,
    WebhookTrigger,
    Workflow,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_VALUES",
    "build_workflow",
    "load_document",
    "load_workflow",
    "load_workflow_text",
    "read_workflow_file",
    "value_spans",
]

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 64
MAX_VALUES = 1_000_000  # a 10,000-task workflow has ~100,000 values

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_CORE + name for name in ("null", "bool", "int", "float", "str", "timestamp")}
_MAPPING_TAGS = {None, "!", _CORE + "map"}
_SEQUENCE_TAGS = {None, "!", _CORE + "seq"}


def load_workflow(path: str | Path, *, catalog: ActionCatalog | None = None) -> Workflow:
    """Read, parse and validate a workflow file.

    Raises:
        WorkflowError: the file cannot be read or is not a single YAML mapping (one line).
        WorkflowInvalid: the document has problems; `.issues` lists every one.
    """
    text = read_workflow_file(path)
    return load_workflow_text(text, str(path), catalog=catalog, source_path=str(path))


def read_workflow_file(path: str | Path) -> str:
    """The file's text, or a WorkflowError naming the file and what is wrong with it."""
    name = str(path)
    if os.path.isdir(path):
        raise WorkflowError(f"{name}: is a directory, not a workflow file")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise WorkflowError(f"{name}: cannot read file: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise WorkflowError(f"{name}: file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; a workflow file is small text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WorkflowError(f"{name}: not UTF-8 text (invalid byte at offset {exc.start}); save it as UTF-8") from None


def load_workflow_text(
    text: str,
    filename: str = "<string>",
    *,
    catalog: ActionCatalog | None = None,
    source_path: str | None = None,
) -> Workflow:
    """Parse and validate workflow YAML given as text (see `load_workflow`)."""
    data, source, issues = load_document(text, filename)
    issues = sorted(set(issues) | set(validate_document(data, source, filename, catalog)))
    if issues:
        more = f" (and {len(issues) - 1} more; run `kestra-trio validate {filename}`)" if len(issues) > 1 else ""
        raise WorkflowInvalid(issues, f"{issues[0]}{more}")
    return build_workflow(data, source_path=source_path)


def load_document(text: str, filename: str = "<string>") -> tuple[dict[str, Any], SourceMap, list[ValidationIssue]]:
    """Parse YAML into plain values + a SourceMap + loader-level issues (duplicate keys).

    Raises:
        WorkflowError: not YAML, empty, several documents, a hostile shape, or the top level
            is not a mapping.
    """
    return _run_builder(_Builder(filename), text, filename)


def _run_builder(builder: _Builder, text: str, filename: str) -> tuple[dict[str, Any], SourceMap, list[ValidationIssue]]:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise WorkflowError(f"{filename}: not valid text (contains unpaired surrogates)") from None
    try:
        builder.run(text)
    except WorkflowError:
        raise
    except Exception as exc:  # yaml.YAMLError and anything libyaml raises on odd input
        offset = _too_deep_offset(text, builder.parsed_to, len(builder.stack), _error_offset(exc, len(text)))
        if offset is not None:
            line, column = _line_column(text, offset)
            raise WorkflowError(f"{filename}:{line}:{column}: {_TOO_DEEP}") from None
        raise WorkflowError(_yaml_error_line(filename, exc)) from None
    if builder.empty:
        raise WorkflowError(f"{filename}: file is empty; a workflow needs at least id and tasks")
    if not isinstance(builder.result, dict):
        kind = "a list" if isinstance(builder.result, list) else "a single value"
        raise WorkflowError(f"{filename}: top level must be a mapping (id: ..., tasks: ...), got {kind}")
    return builder.result, builder.source, builder.issues


Span = tuple[int, int]


def value_spans(text: str, filename: str = "<string>") -> tuple[dict[str, Any], dict[str, list[Span]]]:
    """Parse as `load_document` does (same limits, tags and YAML 1.2 booleans) and also say
    where each value is written: path -> character spans `[start, end)` of the source.

    A path has several spans when it is written several times (a duplicate key) or as an
    alias (`key: *k`): then the alias's span and the span of the value its anchor names.
    A value inside an aliased mapping or list has no span of its own (its parent's covers it).

    Raises:
        WorkflowError: as `load_document`.
    """
    builder = _Builder(filename, track_spans=True)
    data, _source, _issues = _run_builder(builder, text, filename)
    assert builder.spans is not None
    return data, builder.spans


def _yaml_error_line(filename: str, exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"{filename}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {problem}"
    if hasattr(exc, "reason") and hasattr(exc, "position"):  # yaml.reader.ReaderError
        return f"{filename}: not valid YAML: {exc.reason} (at character {exc.position})"  # type: ignore[attr-defined]
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return f"{filename}: not valid YAML: {detail}"


_TOO_DEEP = f"nesting is deeper than {MAX_DEPTH} levels; a workflow does not need that"

# a flow bracket, or text whose brackets are not structure: a quoted scalar (possibly cut off
# by the failure) or a comment
_FLOW_TOKEN = re.compile(r"""[\[{\]}]|'(?:[^']|'')*'?|"(?:[^"\\]|\\.)*"?|(?:^|(?<=[ \t]))#[^\n\r]*""", re.MULTILINE)
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # YAML 1.1 breaks, as PyYAML counts lines


def _error_offset(exc: Exception, size: int) -> int:
    """Where the parser stopped (a character offset), or the end if it does not say."""
    mark = getattr(exc, "problem_mark", None)
    index = getattr(mark, "index", None)
    return min(index, size) if isinstance(index, int) and index >= 0 else size


def _too_deep_offset(text: str, start: int, depth: int, stop: int) -> int | None:
    """The offset of the flow bracket that takes nesting past MAX_DEPTH in text[start:stop + 1].

    `depth` is the nesting at `start` (the end of the last event the parser handed over).
    """
    for token in _FLOW_TOKEN.finditer(text, start, stop + 1):
        char = token.group()
        if char in "[{":
            if depth >= MAX_DEPTH:
                return token.start()
            depth += 1
        elif char in "]}":
            depth = max(depth - 1, 0)
    return None


def _line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset, counting lines as the YAML reader does."""
    line, line_start = 1, 0
    for match in _LINE_BREAK.finditer(text, 0, offset):
        line, line_start = line + 1, match.end()
    return line, offset - line_start + 1


def _tag_text(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


@dataclass
class _Frame:
    """A mapping or list being built; `key` holds a mapping's pending key."""

    value: dict[str, Any] | list[Any]
    path: str
    anchor: str | None
    size: int = 1
    start: int = 0  # the character offset it starts at (for spans)
    key: str | None = None
    key_mark: tuple[int, int] | None = None
    key_lines: dict[str, int] = field(default_factory=dict)


class _Builder:
    """Turns PyYAML events into plain values, iteratively (no recursion on deep input)."""

    def __init__(self, filename: str, *, track_spans: bool = False) -> None:
        self.filename = filename
        #: path -> where its value is written (see `value_spans`); None: not asked for
        self.spans: dict[str, list[Span]] | None = {} if track_spans else None
        self.anchor_spans: dict[str, list[Span]] = {}
        self.source = SourceMap()
        self.issues: list[ValidationIssue] = []
        self.result: Any = None
        self.empty = True
        self.documents = 0
        self.later_document: Any = None
        self.total = 0
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.stack: list[_Frame] = []
        self.parsed_to = 0  # where the last event handed over ends (a character offset)
        self.resolver: Any = None
        self.constructor: Any = None

    def run(self, text: str) -> None:
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        for event in yaml.parse(text, Loader=loader):
            self.on_event(event)
            self.parsed_to = event.end_mark.index

    def fail(self, event: Any, message: str) -> None:
        line, column = _mark(event)
        raise WorkflowError(f"{self.filename}:{line}:{column}: {message}")

    def on_event(self, event: Any) -> None:
        import yaml

        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                self.later_document = event  # fine while it stays empty (a trailing '---')
            return
        content = (yaml.ScalarEvent, yaml.AliasEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)
        if self.later_document is not None and isinstance(event, content):
            if isinstance(event, yaml.ScalarEvent) and event.value == "" and event.implicit[0]:
                return  # an empty document: nothing to load
            self.fail(self.later_document, "only one YAML document is allowed per file (remove the '---' separator)")
        if isinstance(event, yaml.ScalarEvent):
            self.on_scalar(event)
        elif isinstance(event, yaml.AliasEvent):
            self.on_alias(event)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            self.on_start(event, isinstance(event, yaml.MappingStartEvent))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            frame = self.stack.pop()
            if self.spans is not None:
                self.written(frame.path, [(frame.start, event.end_mark.index)], frame.anchor)
            self.finish(frame.value, frame.size, frame.anchor, event)

    def on_start(self, event: Any, is_mapping: bool) -> None:
        if self.stack and self.awaiting_key():
            self.fail(event, "mapping keys must be plain text, not a list or mapping")
        if len(self.stack) >= MAX_DEPTH:
            self.fail(event, _TOO_DEEP)
        allowed = _MAPPING_TAGS if is_mapping else _SEQUENCE_TAGS
        if event.tag not in allowed:
            self.fail(event, f"unsupported YAML tag {_tag_text(event.tag)!r} (only plain values, lists and mappings are allowed)")
        path = self.child_path()
        self.record(path, event)
        self.count(event, 1)
        self.stack.append(_Frame(value={} if is_mapping else [], path=path, anchor=event.anchor, start=event.start_mark.index))

    def on_scalar(self, event: Any) -> None:
        if self.stack and self.awaiting_key():
            self.on_key(event)
            return
        value = self.scalar_value(event)
        path = self.child_path()
        self.record(path, event)
        self.count(event, 1)
        if self.spans is not None:
            self.written(path, [(event.start_mark.index, event.end_mark.index)], event.anchor)
        self.finish(value, 1, event.anchor, event)

    def on_key(self, event: Any) -> None:
        frame = self.stack[-1]
        if event.anchor is not None:
            self.fail(event, "anchors on mapping keys are not supported")
        if event.tag not in (None, "!", _CORE + "str"):
            self.fail(event, f"unsupported YAML tag {_tag_text(event.tag)!r} on a mapping key")
        key = event.value
        line, column = _mark(event)
        if key == "<<" and event.implicit[0]:
            self.fail(event, "merge keys (<<) are not supported; write the keys out")
        assert isinstance(frame.value, dict)
        path = join_path(frame.path, key)
        if key in frame.value:
            self.issues.append(
                ValidationIssue(self.filename, line, column, path, f"duplicate key {key!r} (first on line {frame.key_lines[key]})")
            )
        else:
            frame.key_lines[key] = line
        frame.key = key
        frame.key_mark = (line, column)
        self.source.keys[path] = (line, column)

    def on_alias(self, event: Any) -> None:
        if self.stack and self.awaiting_key():
            self.fail(event, "aliases cannot be used as mapping keys")
        if event.anchor not in self.anchors:
            self.fail(event, f"unknown alias *{event.anchor} (define &{event.anchor} before using it)")
        value, size = self.anchors[event.anchor]
        path = self.child_path()
        self.record(path, event)
        self.count(event, size)
        if self.spans is not None:
            self.written(path, [(event.start_mark.index, event.end_mark.index), *self.anchor_spans[event.anchor]], None)
        self.finish(value, size, None, event)

    def awaiting_key(self) -> bool:
        frame = self.stack[-1]
        return isinstance(frame.value, dict) and frame.key is None

    def child_path(self) -> str:
        if not self.stack:
            return ""
        frame = self.stack[-1]
        if isinstance(frame.value, list):
            return join_path(frame.path, len(frame.value))
        assert frame.key is not None
        return join_path(frame.path, frame.key)

    def written(self, path: str, spans: list[Span], anchor: str | None) -> None:
        assert self.spans is not None
        self.spans.setdefault(path, []).extend(spans)
        if anchor is not None:
            self.anchor_spans[anchor] = spans

    def record(self, path: str, event: Any) -> None:
        self.source.values.setdefault(path, _mark(event))

    def count(self, event: Any, size: int) -> None:
        self.total += size
        if self.total > MAX_VALUES:
            self.fail(event, f"more than {MAX_VALUES:,} values (after expanding aliases); a workflow does not need that")

    def finish(self, value: Any, size: int, anchor: str | None, event: Any) -> None:
        """Attach a completed value to its parent (or make it the document)."""
        if anchor is not None:
            self.anchors[anchor] = (value, size)
        if not self.stack:
            self.result = value
            self.empty = value is None
            return
        parent = self.stack[-1]
        parent.size += size
        if isinstance(parent.value, list):
            parent.value.append(value)
        else:
            assert parent.key is not None
            parent.value[parent.key] = value
            parent.key = None

    def scalar_value(self, event: Any) -> Any:
        import yaml

        if self.resolver is None:
            self.resolver = _core_schema_resolver()
            self.constructor = yaml.constructor.SafeConstructor()
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag not in _SCALAR_TAGS:
            self.fail(event, f"unsupported YAML tag {_tag_text(tag)!r} (only plain values, lists and mappings are allowed)")
        if tag in (_CORE + "str", _CORE + "timestamp"):
            return event.value  # dates stay text: workflow values must be JSON
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark)
        try:
            return self.constructor.construct_object(node)
        except Exception:  # `!!int abc`, `!!bool maybe`: the value does not fit its tag
            self.fail(event, f"{event.value!r} is not a valid {_tag_text(tag)} value")


_CORE_BOOLEAN = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


@functools.cache
def _core_schema_resolver() -> Any:
    """PyYAML's resolver (YAML 1.1) with YAML 1.2 core-schema booleans: true/false only."""
    import yaml

    class CoreSchemaResolver(yaml.resolver.Resolver):
        yaml_implicit_resolvers = {
            first: [(tag, pattern) for tag, pattern in resolvers if tag != _CORE + "bool"]
            for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
        }

    CoreSchemaResolver.add_implicit_resolver(_CORE + "bool", _CORE_BOOLEAN, list("tTfF"))
    return CoreSchemaResolver()


def _mark(event: Any) -> tuple[int, int]:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


# -- validated document -> Workflow ------------------------------------------------------------


def build_workflow(data: dict[str, Any], *, source_path: str | None = None) -> Workflow:
    """Turn a document that passed validation into frozen model objects."""
    permissions = data.get("permissions") or {}
    filesystem = permissions.get("filesystem") or {}
    return Workflow(
        id=data["id"],
        namespace=data.get("namespace", "default"),
        description=data.get("description"),
        enabled=data.get("enabled", True),
        inputs=tuple(_input_spec(item) for item in data.get("inputs") or ()),
        timeout=_seconds(data.get("timeout")),
        security=data.get("security", "trusted"),
        permissions=Permissions(
            network=tuple(permissions.get("network") or ()),
            filesystem_read=tuple(filesystem.get("read") or ()),
            filesystem_write=tuple(filesystem.get("write") or ()),
            env=tuple(permissions.get("env") or ()),
            resources=_resources(permissions.get("resources") or {}),
        ),
        sandbox=data.get("sandbox", "bubblewrap"),
        image=data.get("image"),
        tasks=tuple(_task_spec(item) for item in data["tasks"]),
        source_path=source_path,
        **_flow_fields(data),
    )


def _flow_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The Workflow fields of issue 11's keys (version, phases, context, triggers)."""
    concurrency = data.get("concurrency")
    return {
        "api_version": _api_version(data),
        "errors": tuple(_task_spec(item) for item in data.get("errors") or ()),
        "finally_tasks": tuple(_task_spec(item) for item in data.get("finally") or ()),
        "variables": dict(data.get("variables") or {}),
        "outputs": dict(data.get("outputs") or {}),
        "labels": dict(data.get("labels") or {}),
        "triggers": _triggers(data),
        "concurrency": None if concurrency is None else Concurrency(
            limit=concurrency["limit"], behavior=concurrency.get("behavior", "queue")
        ),
    }


def _api_version(data: dict[str, Any]) -> str:
    written = data.get("apiVersion", data.get("version", "v1"))
    return f"v{written}" if isinstance(written, int) or str(written).isdigit() else str(written)


def _triggers(data: dict[str, Any]) -> tuple[TriggerSpec, ...]:
    if "triggers" in data:
        return tuple(_trigger(item, item["id"]) for item in data["triggers"] or ())
    single = data.get("trigger") or {}
    if single.get("type", "manual") == "manual":
        return ()
    return (_trigger(single, single.get("id", "trigger")),)


def _trigger(item: dict[str, Any], trigger_id: str) -> TriggerSpec:
    common = {"id": trigger_id, "inputs": dict(item.get("inputs") or {}), "enabled": item.get("enabled", True)}
    if item["type"] == "cron":
        return CronTrigger(
            cron=item.get("cron", item.get("schedule")), timezone=item.get("timezone", "UTC"),
            catch_up=item.get("catch_up", "last"), **common,
        )
    if item["type"] == "webhook":
        return WebhookTrigger(key=item["key"], **common)
    return FlowTrigger(
        workflow=item["workflow"], namespace=item.get("namespace"),
        states=tuple(item.get("states") or ("SUCCESS",)), **common,
    )


def _resources(data: dict[str, Any]) -> Resources:
    return Resources(
        memory=parse_size(data["memory"]) if "memory" in data else None,
        cpu_seconds=float(data["cpu_seconds"]) if "cpu_seconds" in data else None,
        processes=data.get("processes"),
        file_size=parse_size(data["file_size"]) if "file_size" in data else None,
    )


def _seconds(value: Any) -> float | None:
    return None if value is None else parse_duration(value)


def _input_spec(item: dict[str, Any]) -> InputSpec:
    has_default = "default" in item
    return InputSpec(
        name=item["name"],
        type=item.get("type", "string"),
        default=item.get("default"),
        required=bool(item.get("required", True)) and not has_default,
        description=item.get("description"),
    )


def _task_spec(item: dict[str, Any]) -> TaskSpec:
    retry = dict(item.get("retry") or {})
    if isinstance(retry.get("backoff"), dict):  # long form: backoff: {type, delay, max_delay}
        long_form = retry.pop("backoff")
        retry.update({k: v for k, v in long_form.items() if k in ("delay", "max_delay")})
        retry["backoff"] = long_form.get("type", "constant")
    defaults = RetryPolicy()
    for_each = None
    if "for_each" in item:
        items = item["for_each"]
        for_each = ForEach(items=items if isinstance(items, str) else tuple(items), concurrency=item.get("concurrency", 1))
    return TaskSpec(
        id=item["id"],
        type=item["type"],
        inputs=dict(item.get("inputs") or {}),
        needs=tuple(dict.fromkeys(item.get("needs") or ())),
        retry=RetryPolicy(
            max_attempts=retry.get("max", defaults.max_attempts),
            backoff=retry.get("backoff", defaults.backoff),
            delay=_seconds(retry.get("delay")) if "delay" in retry else defaults.delay,
            max_delay=_seconds(retry.get("max_delay")),
        ),
        timeout=_seconds(item.get("timeout")),
        description=item.get("description"),
        sandbox=item.get("sandbox"),
        image=item.get("image"),
        run_if=item.get("run_if"),
        for_each=for_each,
        allow_failure=item.get("allow_failure", False),
    )
