"""Rendering: templates in a value + a TemplateContext -> the value the engine uses.

Plain paths are resolved with the sandbox's own lookups; anything else is compiled once
per distinct string (loops and `~` routed through the limits) and streamed with a size cap.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jinja2 import TemplateError as JinjaError
from jinja2 import nodes
from jinja2.runtime import Undefined

from kestra_trio.model.template_errors import TemplateError, TemplateLimitExceeded, TemplateLimits, describe
from kestra_trio.model.template_sandbox import (
    current_limits,
    environment,
    limited,
    missing_message,
    plain,
    route_through_limits,
)
from kestra_trio.model.templates import NO_ITEM, Analysis, Reference, TemplateContext, _short, analyze, secret_names

__all__ = ["render_value"]


def render_value(value: Any, context: TemplateContext, schema: Any, limits: TemplateLimits) -> Any:
    """`templates.render`: see there."""
    allowed = secret_names(value)
    variables = _variables(context, allowed)
    with limited(limits):
        result = _render_value(value, variables, schema)
    _check_total(result, limits)
    return result


class _TaskOutputs(Mapping[str, Any]):
    """`tasks.ID` -> `{"outputs": ...}`, built on access (a 10,000-task run renders often)."""

    def __init__(self, outputs: Mapping[str, Any]) -> None:
        self._outputs = outputs

    def __getitem__(self, task_id: str) -> Any:
        return {"outputs": self._outputs[task_id]}

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)


class _Secrets(Mapping[str, str]):
    """Only the secrets the rendered value names, fetched when used."""

    def __init__(self, secret: Callable[[str], str | None], allowed: set[str]) -> None:
        self._secret = secret
        self._allowed = allowed

    def __getitem__(self, name: str) -> str:
        value = self._secret(name) if name in self._allowed else None
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(name for name in self._allowed if self._secret(name) is not None))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _variables(context: TemplateContext, allowed_secrets: set[str]) -> dict[str, Any]:
    variables = {
        "inputs": context.inputs,
        "vars": context.variables,
        "tasks": _TaskOutputs(context.outputs),
        "secrets": _Secrets(context.secret, allowed_secrets),
        "execution": context.execution,
        "workflow": context.workflow,
        "task": context.task,
        "trigger": context.trigger,
    }
    if context.item is not NO_ITEM:
        variables["item"] = context.item
        variables["item_index"] = context.item_index
    return variables


def _render_value(value: Any, variables: dict[str, Any], schema: Any) -> Any:
    if isinstance(value, str):
        return _render_string(value, variables, schema)
    if isinstance(value, Mapping):
        return {key: _render_value(child, variables, _property_schema(schema, key)) for key, child in value.items()}
    if isinstance(value, (list, tuple)):
        return [_render_value(child, variables, _item_schema(schema, index)) for index, child in enumerate(value)]
    return value


def _render_string(text: str, variables: dict[str, Any], schema: Any) -> Any:
    analysis = analyze(text)
    if analysis.kind == "text" and analysis.tree is None:
        return text
    if analysis.problems:
        raise analysis.problems[0]
    if analysis.kind == "simple":
        return _render_simple(text, analysis, variables, schema)
    return _render_jinja(text, analysis, variables, schema)


def _render_jinja(text: str, analysis: Analysis, variables: dict[str, Any], schema: Any) -> Any:
    try:
        if analysis.whole:
            result = plain(_compiled(text, True)(variables))
        else:
            result = _stream(_compiled(text, False), variables)
    except TemplateError as exc:  # a filter, operator or limit: say which template
        raise type(exc)(f"{_short(text)}: {exc}") from None
    except JinjaError as exc:  # UndefinedError and friends
        raise _missing(text, analysis, variables, exc) from None
    except RecursionError:
        raise TemplateError(f"{_short(text)}: template is nested too deeply") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateError(f"{_short(text)}: {exc}") from None
    if not analysis.whole:
        return result
    if isinstance(result, Undefined):
        raise _missing(text, analysis, variables, result)
    return _as_text_if_wanted(result, schema)


def _render_simple(text: str, analysis: Analysis, variables: dict[str, Any], schema: Any) -> Any:
    env = environment()
    values = []
    for index, piece in enumerate(analysis.pieces):
        if index % 2 == 0:
            continue
        root, steps = piece
        found = variables[root] if root in variables else env.undefined(name=root)
        for kind, key in steps:
            found = env.getattr(found, key) if kind == "attr" else env.getitem(found, key)
        if isinstance(found, Undefined):
            raise _missing(text, analysis, variables, found)
        values.append(found)
    if analysis.whole:
        return _as_text_if_wanted(values[0], schema)
    limit = _current_limit()
    parts, size = [], 0
    for index, piece in enumerate(analysis.pieces):
        part = piece if index % 2 == 0 else _finalized(values[index // 2])
        size += len(part)
        if size > limit:
            raise TemplateLimitExceeded(f"{_short(text)}: rendered text would be longer than {limit:,} characters")
        parts.append(part)
    return "".join(parts)


def _finalized(value: Any) -> str:
    result = environment().finalize(value)  # type: ignore[misc]
    return str(result)


def _current_limit() -> int:
    return current_limits().max_text


def _stream(template: Any, variables: dict[str, Any]) -> str:
    """Render text piece by piece, stopping as soon as it is too long."""
    limit = _current_limit()
    parts: list[str] = []
    size = 0
    for part in template.root_render_func(template.new_context(variables)):
        size += len(part)
        if size > limit:
            raise TemplateLimitExceeded(f"rendered text would be longer than {limit:,} characters")
        parts.append(part)
    return "".join(parts)


@functools.lru_cache(maxsize=1024)
def _compiled(text: str, whole: bool) -> Any:
    """Compile once per distinct string: loops and `~` routed through the limits."""
    env = environment(text)
    tree = env.parse(text)
    if whole:
        expression = tree.body[0].nodes[0]  # type: ignore[attr-defined]
        tree = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)], lineno=1)
    tree = route_through_limits(tree)
    tree.set_environment(env)
    template = env.from_string(tree)
    if not whole:
        return template

    def evaluate(variables: dict[str, Any]) -> Any:
        context = template.new_context(variables)
        for _ in template.root_render_func(context):
            pass
        return context.vars["result"]

    return evaluate



def _missing(text: str, analysis: Analysis, variables: dict[str, Any], error: Any) -> TemplateError:
    """The first reference that does not resolve, said as precisely as we can."""
    for ref in analysis.references:
        if ref.guarded:
            continue
        problem = _resolve_problem(ref, variables)
        if problem is not None:
            return TemplateError(f"{ref.raw}: {problem}")
    if isinstance(error, Undefined):
        message = error._undefined_message
    else:
        message = getattr(error, "message", None) or str(error)
    return TemplateError(f"{_short(text)}: {message}")


def _resolve_problem(ref: Reference, variables: Mapping[str, Any]) -> str | None:
    env = environment()
    if ref.root not in variables:
        if ref.root in ("item", "item_index"):
            return f"{ref.root} is only set in a task with for_each"
        return f"unknown name {ref.root!r}"
    value = variables[ref.root]
    parts = ref.parts
    if ref.root == "secrets":
        name = str(ref.name)
        try:
            value[name]
        except KeyError:
            return f"secret {name} is not set (set KESTRA_TRIO_SECRET_{name})"
        return None
    if ref.root == "tasks":
        if not parts:
            return None
        if parts[0] not in value:
            return f"task {parts[0]!r} has no outputs (it has not succeeded)"
        outputs = value[parts[0]]["outputs"]
        if len(parts) < 3:
            return None
        label = f"output {parts[2]!r} of task {parts[0]!r}"
        if not isinstance(outputs, Mapping) or parts[2] not in outputs:
            return f"task {parts[0]!r} has no output {parts[2]!r}{_has(outputs)}"
        return _descend(env, outputs[parts[2]], parts[3:], label)
    if not parts:
        return None
    owner_label = {"inputs": "input", "vars": "variable", "execution": "execution field", "workflow": "workflow field",
                   "task": "task field", "trigger": "trigger field"}.get(ref.root)  # fmt: skip
    first = env.getitem(value, parts[0]) if not isinstance(value, Mapping) else value.get(parts[0], _ABSENT)
    if first is _ABSENT or isinstance(first, Undefined):
        if ref.root == "execution" and parts[0] == "error":
            return "execution.error is only set in errors: and finally: tasks"
        if owner_label is None:
            return missing_message(value, parts[0])
        return f"{owner_label} {parts[0]!r} is not set{_has(value)}"
    label = f"{owner_label} {parts[0]!r}" if owner_label else f"{ref.root}"
    return _descend(env, first, parts[1:], label)


_ABSENT = object()


def _descend(env: Any, value: Any, parts: tuple[str | int, ...], label: str) -> str | None:
    where = label
    for part in parts:
        found = env.getitem(value, part)
        if isinstance(found, Undefined):
            return f"{where} {missing_message(value, part)}"
        value = found
        where = f"{part!r} in {label}"
    return None


def _has(mapping: Any) -> str:
    if not isinstance(mapping, Mapping):
        return f" (it is {describe(mapping)})"
    names = ", ".join(sorted(str(key) for key in mapping))
    return f" (has: {names})" if names else " (it has none)"


def _check_total(value: Any, limits: TemplateLimits) -> None:
    """A rendered value as JSON stays under 4 × max_text (a list repeating a big output
    a thousand times is small in memory but huge once stored or sent to a plugin)."""
    budget = 4 * limits.max_text
    size = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            size += len(item) + 2
        elif isinstance(item, Mapping):
            size += 2 + 4 * len(item)
            for key, child in item.items():
                size += len(str(key))
                stack.append(child)
        elif isinstance(item, (list, tuple)):
            size += 2 + 2 * len(item)
            stack.extend(item)
        else:
            size += 8
        if size > budget:
            raise TemplateLimitExceeded(
                f"rendered value would be larger than {budget:,} characters as JSON; pass less data between tasks"
            )


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

