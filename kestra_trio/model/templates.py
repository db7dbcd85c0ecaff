"""The `{{ ... }}` mini-language used in task inputs.

An expression is only a dotted path under one of three roots: `inputs.NAME...`,
`tasks.ID.outputs...` and `secrets.NAME`. Numeric parts index lists
(`tasks.extract.outputs.rows.0.id`). There is deliberately no Jinja and no eval: a
workflow file can never run code in the engine, and every reference can be checked
before anything runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kestra_trio.errors import KestraTrioError

__all__ = [
    "ROOTS",
    "Reference",
    "TemplateError",
    "find_references",
    "has_template",
    "parse_expression",
    "references_in_string",
    "scan_string",
    "render",
    "walk_strings",
]

Root = Literal["inputs", "tasks", "secrets"]
ROOTS: tuple[Root, ...] = ("inputs", "tasks", "secrets")

_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
# `{% raw %}...{% endraw %}` keeps its content literal (as in Jinja and Kestra's Pebble):
# `docker inspect --format '{% raw %}{{.Id}}{% endraw %}'`
_RAW = re.compile(r"\{%-?\s*raw\s*-?%\}(.*?)\{%-?\s*endraw\s*-?%\}", re.DOTALL)


def _segments(text: str) -> list[tuple[bool, str]]:
    """`(literal, text)` pieces of a string: raw blocks are literal, the rest holds templates."""
    if "{%" not in text:
        return [(False, text)]
    pieces: list[tuple[bool, str]] = []
    end = 0
    for match in _RAW.finditer(text):
        if match.start() > end:
            pieces.append((False, text[end : match.start()]))
        pieces.append((True, match.group(1)))
        end = match.end()
    if end < len(text) or not pieces:
        pieces.append((False, text[end:]))
    return pieces
_PART = r"[A-Za-z0-9_-]+"
_EXPRESSION = re.compile(rf"{_PART}(?:\.{_PART})*")
_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateError(KestraTrioError):
    """a `{{ ... }}` template is malformed or refers to something that does not exist."""


@dataclass(frozen=True, slots=True)
class Reference:
    """One `{{ root.part.part }}` occurrence; `raw` is the normalised `{{ expr }}` text."""

    root: Root
    parts: tuple[str, ...]
    raw: str

    @property
    def name(self) -> str:
        """The input name, secret name or task id this reference starts with."""
        return self.parts[0]

    @property
    def output_path(self) -> tuple[str, ...]:
        """For `tasks.ID.outputs.a.b`: `("a", "b")`; empty for other roots."""
        return self.parts[2:] if self.root == "tasks" else ()


def has_template(value: Any) -> bool:
    """True when a string (or any string nested in lists/mappings) contains `{{`."""
    return any("{{" in text for _, text in walk_strings(value))


def walk_strings(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Yield `(path, string)` for every string in nested mappings and lists, keys excluded.

    Iterative, so a deeply nested value cannot hit the recursion limit.
    """
    stack: list[tuple[tuple[str | int, ...], Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, Mapping):
            stack.extend((where + (key,), child) for key, child in reversed(list(item.items())))
        elif isinstance(item, (list, tuple)):
            stack.extend((where + (index,), child) for index, child in reversed(list(enumerate(item))))


def parse_expression(expression: str) -> Reference:
    """Parse the inside of `{{ ... }}` into a Reference, or raise TemplateError saying why."""
    expr = expression.strip()
    raw = f"{{{{ {expr} }}}}"
    if not expr:
        raise TemplateError(f"{raw}: empty template (write e.g. {{{{ inputs.name }}}})")
    if not _EXPRESSION.fullmatch(expr):
        raise TemplateError(
            f"{raw}: a template is only a dotted path such as inputs.name or tasks.ID.outputs.key "
            "(for a literal '{{', wrap it in {% raw %}...{% endraw %})"
        )
    root, *parts = expr.split(".")
    if root not in ROOTS:
        raise TemplateError(f"{raw}: unknown root {root!r} (use inputs, tasks or secrets)")
    if not parts:
        raise TemplateError(f"{raw}: name what to use, e.g. {{{{ {root}.{_EXAMPLE_PART[root]} }}}}")
    if root == "tasks" and (len(parts) < 2 or parts[1] != "outputs"):
        raise TemplateError(f"{raw}: only tasks.<id>.outputs... can be used (e.g. tasks.{parts[0]}.outputs.NAME)")
    if root == "secrets" and (len(parts) != 1 or not _SECRET_NAME.fullmatch(parts[0])):
        raise TemplateError(f"{raw}: write a secret as secrets.NAME (letters, digits, underscore)")
    return Reference(root=root, parts=tuple(parts), raw=raw)  # type: ignore[arg-type]


_EXAMPLE_PART = {"inputs": "name", "tasks": "ID.outputs.NAME", "secrets": "NAME"}


def references_in_string(text: str) -> list[Reference]:
    """All references in one string; raises TemplateError on the first malformed template."""
    references = []
    for item in scan_string(text):
        if isinstance(item, TemplateError):
            raise item
        references.append(item)
    return references


def scan_string(text: str) -> list[Reference | TemplateError]:
    """Each template of a string, parsed, or the error saying why it is malformed.

    Validation uses this to report every template problem of a string, not just the first.
    """
    items: list[Reference | TemplateError] = []
    for literal, piece in _segments(text):
        if literal:
            continue
        end = 0
        for match in _TEMPLATE.finditer(piece):
            items.extend(_unclosed(piece[end : match.start()]))
            try:
                items.append(parse_expression(match.group(1)))
            except TemplateError as exc:
                items.append(exc)
            end = match.end()
        items.extend(_unclosed(piece[end:]))
    return items


def _unclosed(segment: str) -> list[TemplateError]:
    if "{{" not in segment:
        return []
    start = segment.index("{{")
    snippet = segment[start : start + 30].splitlines()[0]
    return [TemplateError(f"'{{{{' without a closing '}}}}' in {snippet!r}")]


def find_references(value: Any) -> list[Reference]:
    """Every reference in nested mappings, lists and strings, in document order."""
    return [ref for _, text in walk_strings(value) for ref in references_in_string(text)]


def render(
    value: Any,
    *,
    inputs: Mapping[str, Any],
    task_outputs: Mapping[str, Mapping[str, Any]],
    secret: Callable[[str], str | None],
) -> Any:
    """Deep-render templates in `value` and return a new value (the input is not changed).

    A string that is exactly one `{{ expr }}` becomes the referenced value with its JSON
    type (a list stays a list); otherwise each template is interpolated, non-strings as JSON.

    Raises:
        TemplateError: a template is malformed or cannot be resolved.
    """
    context = _Context(inputs, task_outputs, secret)
    return _render_value(value, context)


@dataclass(frozen=True, slots=True)
class _Context:
    inputs: Mapping[str, Any]
    task_outputs: Mapping[str, Mapping[str, Any]]
    secret: Callable[[str], str | None]


def _render_value(value: Any, context: _Context) -> Any:
    if isinstance(value, str):
        return _render_string(value, context)
    if isinstance(value, Mapping):
        return {key: _render_value(child, context) for key, child in value.items()}
    if isinstance(value, (list, tuple)):
        return [_render_value(child, context) for child in value]
    return value


def _render_string(text: str, context: _Context) -> Any:
    if "{{" not in text and "{%" not in text:
        return text
    pieces = _segments(text)
    if len(pieces) > 1 or pieces[0][0]:
        references_in_string(text)  # raise on malformed templates before substituting anything
        return "".join(piece if literal else str(_render_piece(piece, context)) for literal, piece in pieces)
    return _render_piece(text, context)


def _render_piece(text: str, context: _Context) -> Any:
    if "{{" not in text:
        return text
    whole = _TEMPLATE.fullmatch(text.strip())
    if whole is not None and "{{" not in whole.group(1):
        return _resolve(parse_expression(whole.group(1)), context)
    references_in_string(text)  # raise on malformed templates before substituting anything

    def substitute(match: re.Match[str]) -> str:
        resolved = _resolve(parse_expression(match.group(1)), context)
        return resolved if isinstance(resolved, str) else json.dumps(resolved)

    return _TEMPLATE.sub(substitute, text)


def _resolve(ref: Reference, context: _Context) -> Any:
    if ref.root == "secrets":
        found = context.secret(ref.name)
        if found is None:
            raise TemplateError(
                f"{ref.raw}: secret {ref.name} is not set (set KESTRA_TRIO_SECRET_{ref.name})"
            )
        return found
    if ref.root == "inputs":
        if ref.name not in context.inputs:
            raise TemplateError(f"{ref.raw}: input {ref.name!r} is not set{_has(context.inputs)}")
        return _descend(ref, context.inputs[ref.name], ref.parts[1:], f"input {ref.name!r}")
    if ref.name not in context.task_outputs:
        raise TemplateError(f"{ref.raw}: task {ref.name!r} has no outputs (it has not succeeded)")
    outputs = context.task_outputs[ref.name]
    path = ref.output_path
    if not path:
        return outputs
    if path[0] not in outputs:
        raise TemplateError(f"{ref.raw}: task {ref.name!r} has no output {path[0]!r}{_has(outputs)}")
    return _descend(ref, outputs[path[0]], path[1:], f"output {path[0]!r} of task {ref.name!r}")


def _descend(ref: Reference, value: Any, parts: tuple[str, ...], label: str) -> Any:
    """Follow the remaining dotted parts into mappings (keys) and lists (indexes)."""
    where = label
    for part in parts:
        if isinstance(value, Mapping):
            if part not in value:
                raise TemplateError(f"{ref.raw}: {where} has no key {part!r}{_has(value)}")
            value = value[part]
        elif isinstance(value, list):
            if not part.isdigit() or int(part) >= len(value):
                raise TemplateError(f"{ref.raw}: {where} has no item {part} (it has {len(value)} item(s))")
            value = value[int(part)]
        else:
            raise TemplateError(f"{ref.raw}: {where} is {_kind(value)}, it has no {part!r}")
        where = f"{part!r} in {label}"
    return value


def _has(mapping: Mapping[str, Any]) -> str:
    names = ", ".join(sorted(str(key) for key in mapping))
    return f" (has: {names})" if names else " (it has none)"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string" if isinstance(value, str) else type(value).__name__
