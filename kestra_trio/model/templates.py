"""The `{{ ... }}` mini-language used in task inputs.

An expression is only a dotted path under one of three roots: `inputs.NAME...`,
`tasks.ID.outputs...` and `secrets.NAME`. Numeric parts index lists
(`tasks.extract.outputs.rows.0.id`). There is deliberately no Jinja and no eval: a
workflow file can never run code in the engine, and every reference can be checked
before anything runs.

Besides `{{ expr }}` the only syntax is `{% raw %}...{% endraw %}` (literal text). Other
Jinja tags (`{% if %}`, `{% for %}` ...) and `{# comments #}` are reported, never passed
through as text, so a Jinja habit cannot silently produce a wrong command.
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
    "UnsupportedTemplate",
    "find_references",
    "has_template",
    "has_template_syntax",
    "parse_expression",
    "references_in_string",
    "scan_string",
    "render",
    "walk_strings",
]

Root = Literal["inputs", "tasks", "secrets"]
ROOTS: tuple[Root, ...] = ("inputs", "tasks", "secrets")

# What starts template syntax: `{{` (expression), `{%` (tag), `{#` (comment).
_OPENER = re.compile(r"\{[{%#]")
# A tag runs to the first `%}`, and never across another `{%`.
_TAG = re.compile(r"\{%((?:(?!\{%|%\}).)*)%\}", re.DOTALL)
_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)
# `{% raw %}...{% endraw %}` keeps its content literal (as in Jinja and Kestra's Pebble):
# `docker inspect --format '{% raw %}{{.Id}}{% endraw %}'`
_ENDRAW = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")
_CONTINUATIONS = frozenset({"else", "elif", "elseif"})
_SUPPORTED = "only {{ expression }} and {% raw %}...{% endraw %} are supported"

# Tokens of a string: literal text, the content of a raw block, a `{{ ... }}`, a problem.
_Token = tuple[Literal["text", "raw", "expr", "error"], Any]


def _lex(text: str) -> list[_Token]:
    """Split a string into text, raw-block content, `{{ ... }}` expressions and problems.

    `{#` without a later `#}` is plain text (so shell's `${#var}` needs no escaping); an
    unclosed `{{` or `{%` is an error, as in Jinja.
    """
    if "{{" not in text and "{%" not in text and "{#" not in text:
        return [("text", text)]
    tokens: list[_Token] = []
    pos = 0
    unclosed_reported = unsupported_reported = comment_unclosed = tag_unclosed = False
    while True:
        match = _OPENER.search(text, pos)
        if match is None:
            break
        start = match.start()
        if start > pos:
            tokens.append(("text", text[pos:start]))
        opener = match.group()
        if opener == "{{":
            # once one `{{` had no `}}` after it, no later one has: do not search again
            close = -1 if unclosed_reported else text.find("}}", match.end())
            if close >= 0:
                tokens.append(("expr", text[match.end() : close]))
                pos = close + 2
                continue
            if not unclosed_reported:  # every later `{{` is unclosed too: say it once
                tokens.append(("error", TemplateError(f"'{{{{' without a closing '}}}}' in {_snippet(text, start)!r}")))
                unclosed_reported = True
            tokens.append(("text", opener))
            pos = match.end()
        elif opener == "{#":
            comment = None if comment_unclosed else _COMMENT.match(text, start)
            if comment is None:  # `{#` without a later `#}`: text, and so is every later `{#`
                comment_unclosed = True
                tokens.append(("text", opener))
                pos = match.end()
                continue
            tokens.append((
                "error",
                UnsupportedTemplate(
                    "unsupported template comment {# ... #}: remove it (a YAML comment starts with #), "
                    "or for literal text wrap it in {% raw %}...{% endraw %}"
                ),
            ))
            pos = comment.end()
        else:
            tag = None if tag_unclosed else _TAG.match(text, start)
            if tag is None:
                if not tag_unclosed:
                    tokens.append((
                        "error",
                        TemplateError(
                            f"'{{%' without a closing '%}}' in {_snippet(text, start)!r} "
                            "(for a literal '{%', wrap it in {% raw %}...{% endraw %})"
                        ),
                    ))
                    # no `%}` after this one: the later `{%` are unclosed too, say it once
                    tag_unclosed = text.find("%}", match.end()) < 0
                tokens.append(("text", opener))
                pos = match.end()
                continue
            body = tag.group(1).strip().lstrip("-+").rstrip("-+").strip()
            name = body.split()[0] if body else ""
            if name == "raw":
                end = _ENDRAW.search(text, tag.end())
                if end is None:
                    tokens.append(("error", TemplateError("{% raw %} without {% endraw %}")))
                    tokens.append(("text", text[start:]))
                    return tokens
                tokens.append(("raw", text[tag.end() : end.start()]))
                pos = end.end()
            elif name == "endraw":
                tokens.append(("error", TemplateError("{% endraw %} without {% raw %}")))
                pos = tag.end()
            else:
                # `{% if %}...{% else %}...{% endif %}` is one problem: report its first tag
                if not (unsupported_reported and (name.startswith("end") or name in _CONTINUATIONS)):
                    shown = f"{{% {name[:30]} %}}" if name else "{% %}"
                    tokens.append(("error", UnsupportedTemplate(f"unsupported template tag {shown}: {_SUPPORTED}")))
                    unsupported_reported = True
                pos = tag.end()
    if pos < len(text):
        tokens.append(("text", text[pos:]))
    return tokens


def _snippet(text: str, start: int) -> str:
    return text[start : start + 30].splitlines()[0]


def has_template_syntax(text: str) -> bool:
    """True when a string holds anything the template language reads: `{{`, `{%` or `{#`."""
    return "{{" in text or "{%" in text or "{#" in text


_PART = r"[A-Za-z0-9_-]+"
_EXPRESSION = re.compile(rf"{_PART}(?:\.{_PART})*")
_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateError(KestraTrioError):
    """a `{{ ... }}` template is malformed or refers to something that does not exist."""


class UnsupportedTemplate(TemplateError):
    """Jinja syntax this language does not have: a `{% tag %}` other than raw, a `{# comment #}`."""


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
    for kind, value in _lex(text):
        if kind == "error":
            items.append(value)
        elif kind == "expr":
            try:
                items.append(parse_expression(value))
            except TemplateError as exc:
                items.append(exc)
    return items


def find_references(value: Any) -> list[Reference]:
    """Every reference in nested mappings, lists and strings, in document order."""
    return [ref for _, text in walk_strings(value) for ref in references_in_string(text)]


def render(
    value: Any,
    *,
    inputs: Mapping[str, Any],
    task_outputs: Mapping[str, Mapping[str, Any]],
    secret: Callable[[str], str | None],
    schema: Mapping[str, Any] | None = None,
) -> Any:
    """Deep-render templates in `value` and return a new value (the input is not changed).

    A string that is exactly one `{{ expr }}`, with nothing before or after it, becomes the
    referenced value with its JSON type (a list stays a list); any other string is text in
    which each template is replaced, non-strings written as JSON (`2`, `true`, `null`).

    `schema` is the JSON Schema the rendered value must match (an action's input schema).
    Where it declares a whole-value template's place a string (`type: string`, or a type
    list with string but not the value's type), a number, boolean or null is converted to
    that same JSON text: `message: "{{ tasks.a.outputs.count }}"` gives `"2"`, not `2`.
    Lists and mappings are never converted.

    Raises:
        TemplateError: a template is malformed or cannot be resolved.
    """
    context = _Context(inputs, task_outputs, secret)
    return _render_value(value, context, schema)


@dataclass(frozen=True, slots=True)
class _Context:
    inputs: Mapping[str, Any]
    task_outputs: Mapping[str, Mapping[str, Any]]
    secret: Callable[[str], str | None]


def _render_value(value: Any, context: _Context, schema: Any) -> Any:
    if isinstance(value, str):
        return _render_string(value, context, schema)
    if isinstance(value, Mapping):
        return {key: _render_value(child, context, _property_schema(schema, key)) for key, child in value.items()}
    if isinstance(value, (list, tuple)):
        return [_render_value(child, context, _item_schema(schema, index)) for index, child in enumerate(value)]
    return value


def _render_string(text: str, context: _Context, schema: Any) -> Any:
    tokens = _lex(text)
    if len(tokens) == 1 and tokens[0][0] == "text":
        return text
    parsed: list[tuple[str, Any]] = []
    for kind, value in tokens:  # raise on any problem before substituting anything
        if kind == "error":
            raise value
        parsed.append((kind, parse_expression(value) if kind == "expr" else value))
    if len(parsed) == 1 and parsed[0][0] == "expr":
        return _as_text_if_wanted(_resolve(parsed[0][1], context), schema)
    return "".join(_interpolate(value, context) if kind == "expr" else value for kind, value in parsed)


def _interpolate(ref: Reference, context: _Context) -> str:
    resolved = _resolve(ref, context)
    return resolved if isinstance(resolved, str) else json.dumps(resolved)


# -- whole-value templates into string properties ----------------------------------------


def _property_schema(schema: Any, key: Any) -> Any:
    """The schema a mapping's `key` must match: `properties`, then `patternProperties`,
    then `additionalProperties`; None when it cannot be told (no conversion then)."""
    if not isinstance(schema, Mapping):
        return None
    properties = schema.get("properties")
    if isinstance(properties, Mapping) and key in properties:
        return properties[key]
    patterns = schema.get("patternProperties")
    if isinstance(patterns, Mapping) and isinstance(key, str):
        for pattern, sub in patterns.items():
            try:
                if re.search(pattern, key):
                    return sub
            except re.error:
                return None
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, Mapping) else None


def _item_schema(schema: Any, index: int) -> Any:
    """The schema list item `index` must match: `prefixItems`, then `items`."""
    if not isinstance(schema, Mapping):
        return None
    prefix = schema.get("prefixItems")
    if isinstance(prefix, list):
        if index < len(prefix):
            return prefix[index]
    items = schema.get("items")
    if isinstance(items, list):  # the draft 4-7 tuple form
        return items[index] if index < len(items) else None
    return items if isinstance(items, Mapping) else None


def _as_text_if_wanted(value: Any, schema: Any) -> Any:
    """A number, boolean or null as its JSON text when `schema` wants a string instead."""
    if isinstance(value, (str, list, dict)) or not isinstance(schema, Mapping):
        return value
    declared = schema.get("type")
    types = [declared] if isinstance(declared, str) else declared
    if not isinstance(types, list) or "string" not in types or _json_type_matches(value, types):
        return value
    return json.dumps(value)


def _json_type_matches(value: Any, types: list[Any]) -> bool:
    """JSON Schema's `type` rule: an int is also a number, 2.0 is also an integer."""
    if value is None:
        return "null" in types
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, int):
        return "integer" in types or "number" in types
    if isinstance(value, float):
        return "number" in types or ("integer" in types and value.is_integer())
    return True  # anything else (not JSON) is left alone


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
