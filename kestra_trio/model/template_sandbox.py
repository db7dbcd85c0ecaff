"""The Jinja2 environment templates run in: JSON data only, a curated filter set, bounded cost.

Jinja's `ImmutableSandboxedEnvironment` already refuses Python internals (`__class__`,
`mro`, ...) and mutating methods. We go further, because a workflow's values are JSON:

* **Dotted access is key access.** `x.name` on a mapping is `x["name"]` (an output called
  `items` or `keys` is the output, not a dict method); on anything else it is undefined.
  No attribute of a Python object is reachable, so no method can be called: strings and
  lists are changed with filters (`| upper`), never with `.upper()`.
* **Nothing to call.** No globals (`range`, `lipsum`, `namespace` ...), a curated filter
  and test set, no macros, includes or imports (validation refuses those tags).
* **Bounded cost.** Every string a template builds (operators, `~`, filters, the rendered
  text) is at most `TemplateLimits.max_text` characters, checked *before* building it where
  the size is known in advance (`'x' * 10**9`, `| replace('', ...)`, `| join`); loops
  share one iteration budget; integers stay below `max_int_bits`; and a render that runs
  longer than `max_seconds` stops at its next loop step, filter or operator.

The environment is built once; per-render limits travel in a context variable, so
concurrent renders (trio tasks) never see each other's budget.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import functools
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2 import filters as jinja_filters
from jinja2 import tests as jinja_tests
from jinja2.runtime import LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing
from jinja2.visitor import NodeTransformer

from kestra_trio.model.template_errors import (
    DEFAULT_LIMITS,
    TemplateError,
    TemplateLimitExceeded,
    TemplateLimits,
    describe,
)

__all__ = [
    "DEFAULT_LIMITS",
    "FILTERS",
    "LOOP_FIELDS",
    "TESTS",
    "Missing",
    "TemplateError",
    "TemplateLimitExceeded",
    "TemplateLimits",
    "check_text",
    "current_limits",
    "describe",
    "environment",
    "limited",
    "missing_message",
    "plain",
    "route_through_limits",
]


@dataclass(slots=True)
class _Budget:
    limits: TemplateLimits
    deadline: float
    iterations: int = 0

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimitExceeded(
                f"template took longer than {self.limits.max_seconds:g}s to render; simplify it"
            )


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("kestra_trio_template_budget", default=None)


@contextlib.contextmanager
def limited(limits: TemplateLimits = DEFAULT_LIMITS) -> Iterator[_Budget]:
    """Run one render under `limits` (filters, operators and loops check them)."""
    budget = _Budget(limits, time.monotonic() + limits.max_seconds)
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # outside `limited()` (Jinja folding constants): the default limits
        return _Budget(DEFAULT_LIMITS, time.monotonic() + DEFAULT_LIMITS.max_seconds)
    return budget


def current_limits() -> TemplateLimits:
    """The limits of the render in progress (the defaults outside one)."""
    return _budget().limits


def plain(value: Any) -> Any:
    """A filter's lazy result (`map`, `select`, `items`) as a list; other values unchanged."""
    lazy = hasattr(value, "__next__") and not isinstance(value, (str, bytes, Mapping, list, Undefined))
    if not lazy and not isinstance(value, tuple):
        return value
    limits = _budget().limits
    items = []
    for item in value:
        items.append(plain(item) if isinstance(item, tuple) else item)
        if len(items) > limits.max_items:
            _check_items(len(items), limits)
    return items


def _too_long(what: str, size: int, limit: int) -> TemplateLimitExceeded:
    return TemplateLimitExceeded(f"{what} would be {size:,} characters; a template value may have at most {limit:,}")


def check_text(value: Any, what: str = "text") -> Any:
    """Raise when a string is past the size limit; return the value otherwise."""
    if isinstance(value, str):
        limit = _budget().limits.max_text
        if len(value) > limit:
            raise _too_long(what, len(value), limit)
    return value


# -- undefined values ------------------------------------------------------------------------


class Missing(StrictUndefined):
    """A value that does not exist. Following it further (`.a.b`) stays missing, so
    `| default(...)` and `is defined` work on a whole path; using it in any other way
    (text, comparison, loop, test of truth) is an error that names what was missing."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        if self._undefined_obj is missing:
            return f"{self._undefined_name!r} is not defined"
        return missing_message(self._undefined_obj, self._undefined_name)


def missing_message(owner: Any, name: Any) -> str:
    """Why `owner[name]` / `owner.name` does not exist, with what does."""
    if isinstance(owner, Mapping):
        keys = ", ".join(sorted(str(key) for key in owner))
        has = f" (has: {keys})" if keys else " (it has none)"
        return f"has no key {name!r}{has}"
    if isinstance(owner, (list, tuple)):
        if isinstance(name, int):
            return f"has no item {name} (it has {len(owner)} item(s))"
        return f"is a list, it has no {name!r} (index it with a number: .0 or [0])"
    if isinstance(owner, str) and isinstance(name, str):
        return f"is a string, it has no {name!r} (use a filter, e.g. | {name})" if name in FILTERS else (
            f"is a string, it has no {name!r}"
        )
    return f"is {describe(owner)}, it has no {name!r}"


# -- the environment -------------------------------------------------------------------------

#: what `loop.X` may read inside `{% for %}` (the loop object is the one Python object
#: templates see; its methods `cycle`/`changed` and recursion are not offered)
LOOP_FIELDS = frozenset({
    "index", "index0", "revindex", "revindex0", "first", "last", "length", "previtem", "nextitem", "depth", "depth0",
})


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"-", "+"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`x.name`: a key of a mapping, a field of `loop`; nothing else."""
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                return self.undefined(obj=obj, name=attribute)
        if isinstance(obj, Undefined):
            return obj  # a missing value stays missing down the path
        if isinstance(obj, LoopContext) and attribute in LOOP_FIELDS:
            return getattr(obj, attribute)
        return self.undefined(obj=obj, name=attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        """`x[key]`, `x.0`: a mapping's key (a number also finds its text key: `.0` -> "0"),
        a list's or string's index or slice."""
        if isinstance(obj, Undefined):
            return obj
        if isinstance(obj, Mapping):
            try:
                return obj[argument]
            except (KeyError, TypeError):
                if isinstance(argument, int) and not isinstance(argument, bool) and str(argument) in obj:
                    return obj[str(argument)]
                return self.undefined(obj=obj, name=argument)
        if isinstance(obj, (list, tuple, str)):
            if isinstance(argument, slice) or (isinstance(argument, int) and not isinstance(argument, bool)):
                try:
                    return obj[argument]
                except (IndexError, ValueError, TypeError):
                    return self.undefined(obj=obj, name=argument)
        if isinstance(obj, LoopContext) and argument in LOOP_FIELDS:
            return getattr(obj, argument)
        return self.undefined(obj=obj, name=argument)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N807
        # validation refuses calls; this is the last line if one slips through
        raise TemplateError("function calls are not supported in templates; use filters (x | upper)")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.check()
        limits = budget.limits
        try:
            if operator == "+":
                if isinstance(left, str) and isinstance(right, str) and len(left) + len(right) > limits.max_text:
                    raise _too_long("'+'", len(left) + len(right), limits.max_text)
                if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
                    _check_items(len(left) + len(right), limits)
                return _check_int(left + right, limits)
            if operator == "-":
                return _check_int(left - right, limits)
            if operator == "*":
                return _multiply(left, right, limits)
            if operator == "/":
                return left / right
            if operator == "//":
                return left // right
            if operator == "%":
                if isinstance(left, str):
                    raise TemplateError("'%' formatting of text is not supported; join text with ~")
                return left % right
            if operator == "**":
                return _power(left, right, limits)
        except TemplateError:
            raise
        except ZeroDivisionError:
            raise TemplateError(f"division by zero ({operator})") from None
        except OverflowError:
            raise TemplateError(f"a number is too large ({operator})") from None
        except TypeError:
            raise TemplateError(
                f"cannot apply {operator!r} to {describe(left)} and {describe(right)}"
            ) from None
        raise TemplateError(f"unsupported operator {operator!r}")  # pragma: no cover

    def call_unop(self, context: Any, operator: str, arg: Any) -> Any:
        try:
            return -arg if operator == "-" else +arg
        except TypeError:
            raise TemplateError(f"cannot apply {operator!r} to {describe(arg)}") from None


def _check_int(value: Any, limits: TemplateLimits) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > limits.max_int_bits:
        raise TemplateLimitExceeded(f"a number would have more than {limits.max_int_bits} bits")
    return value


def _check_items(count: int, limits: TemplateLimits) -> None:
    if count > limits.max_items:
        raise TemplateLimitExceeded(f"a list would have {count:,} items; a template value may have at most {limits.max_items:,}")


def _multiply(left: Any, right: Any, limits: TemplateLimits) -> Any:
    sequence, count = (left, right) if isinstance(left, (str, list, tuple)) else (right, left)
    if isinstance(sequence, (str, list, tuple)) and isinstance(count, int) and not isinstance(count, bool):
        size = len(sequence) * max(count, 0)
        if isinstance(sequence, str) and size > limits.max_text:
            raise _too_long("'*'", size, limits.max_text)
        if not isinstance(sequence, str):
            _check_items(size, limits)
        return left * right
    if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > limits.max_int_bits + 1:
        raise TemplateLimitExceeded(f"a number would have more than {limits.max_int_bits} bits")
    return left * right


def _power(base: Any, exponent: Any, limits: TemplateLimits) -> Any:
    if isinstance(base, int) and isinstance(exponent, int) and not isinstance(base, bool) and exponent > 0:
        if abs(base) > 1 and exponent * max(1, (abs(base) - 1).bit_length()) > limits.max_int_bits:
            raise TemplateLimitExceeded(f"a number would have more than {limits.max_int_bits} bits")
    result = base**exponent
    if isinstance(result, complex):
        raise TemplateError("a negative number to a fractional power has no real value")
    return result


# -- filters ---------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A value as template text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _json(value: Any, indent: int | None = None) -> str:
    if indent is not None and (not isinstance(indent, int) or isinstance(indent, bool) or not 0 <= indent <= 8):
        raise TemplateError("json(indent=N) takes a whole number from 0 to 8")
    if isinstance(value, Undefined):
        str(value)  # raises, naming what is missing
    try:
        return check_text(json.dumps(value, indent=indent, allow_nan=False), "json")
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"json: {exc}") from None


def _date(value: Any, format: str | None = None, tz: str | None = None) -> str:  # noqa: A002
    """An ISO 8601 text or epoch milliseconds, formatted with strftime, in UTC or `tz`."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TemplateError(f"date: needs an ISO 8601 date-time or epoch milliseconds, got {describe(value)}")
    try:
        if isinstance(value, str):
            moment = datetime.fromisoformat(value.strip())
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
        else:
            moment = datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise TemplateError(f"date: {value!r} is not an ISO 8601 date-time or epoch milliseconds") from None
    if tz is not None:
        moment = moment.astimezone(_zone(tz))
    if format is None:
        return moment.isoformat(timespec="seconds")
    if not isinstance(format, str):
        raise TemplateError("date: the format is text such as \"%Y-%m-%d\"")
    try:
        return check_text(moment.strftime(format), "date")
    except ValueError as exc:
        raise TemplateError(f"date: bad format {format!r}: {exc}") from None


def _zone(name: Any) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str):
        raise TemplateError("date: tz is a time zone name such as \"Europe/Paris\"")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TemplateError(f"date: unknown time zone {name!r} (an IANA name such as \"Europe/Paris\")") from None


def _string(value: Any) -> str:
    if isinstance(value, Undefined):
        return str(value)
    return _text(plain(value))


def _replace(value: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old, new = _string(value), _string(old), _string(new)
    limit = _budget().limits.max_text
    occurrences = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    size = len(text) + occurrences * (len(new) - len(old))
    if size > limit:
        raise _too_long("replace", size, limit)
    return text.replace(old, new, -1 if count is None else count)


def _join(value: Any, separator: Any = "", attribute: Any = None) -> str:
    if isinstance(value, Undefined):
        str(value)
    separator = _string(separator)
    items = value if attribute is None else _pluck(value, attribute)
    limit = _budget().limits.max_text
    parts: list[str] = []
    size = 0
    for index, item in enumerate(items):
        part = _string(item)
        size += len(part) + (len(separator) if index else 0)
        if size > limit:
            raise _too_long("join", size, limit)
        parts.append(part)
    return separator.join(parts)


def _list(value: Any) -> list[Any]:
    if isinstance(value, Undefined):
        str(value)
    if isinstance(value, str):
        _check_items(len(value), _budget().limits)
    if isinstance(value, Mapping):
        return list(value)
    try:
        return list(value)
    except TypeError:
        raise TemplateError(f"list: {describe(value)} cannot be made a list") from None


def _indent(value: Any, width: Any = 4, first: bool = False, blank: bool = False) -> str:
    text = _string(value)
    pad = width if isinstance(width, str) else " " * (width if isinstance(width, int) and not isinstance(width, bool) else 0)
    size = len(text) + (text.count("\n") + 1) * len(pad)
    limit = _budget().limits.max_text
    if size > limit:
        raise _too_long("indent", size, limit)
    return str(jinja_filters.do_indent(text, width, first, blank))


def _sum(value: Any, attribute: Any = None, start: Any = 0) -> Any:
    if not isinstance(start, (int, float)) or isinstance(start, bool):
        raise TemplateError("sum: adds numbers only (start must be a number)")
    items = value if attribute is None else _pluck(value, attribute)
    total = start
    for item in items:
        if not isinstance(item, (int, float)) or isinstance(item, bool):
            raise TemplateError(f"sum: adds numbers only, got {describe(item)}")
        total = _check_int(total + item, _budget().limits)
    return total


def _pluck(items: Any, attribute: Any) -> Iterator[Any]:
    """`attribute="a.b"`: that key path of each item, as `map(attribute=...)` reads it."""
    env = environment()
    path = [int(part) if part.isdigit() else part for part in str(attribute).split(".")]
    for item in items:
        for part in path:
            item = env.getitem(item, part)
        yield item


def _b64encode(value: Any) -> str:
    return check_text(base64.b64encode(_string(value).encode("utf-8")).decode("ascii"), "b64encode")


def _b64decode(value: Any) -> str:
    try:
        return base64.b64decode(_string(value), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise TemplateError("b64decode: the text is not base64 of UTF-8 text") from None


def _fromjson(value: Any) -> Any:
    try:
        return json.loads(_string(value))
    except (ValueError, RecursionError) as exc:
        raise TemplateError(f"fromjson: not JSON text ({exc})") from None


#: Jinja's own filters we keep: none can reach Python objects or blow up on its arguments
_JINJA_FILTERS = (
    "abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "filesizeformat", "first", "float",
    "int", "items", "last", "length", "lower", "map", "max", "min", "reject", "rejectattr", "reverse", "round",
    "select", "selectattr", "sort", "striptags", "title", "trim", "truncate", "unique", "upper", "urlencode",
    "wordcount",
)
_OUR_FILTERS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "fromjson": _fromjson,
    "date": _date,
    "string": _string,
    "replace": _replace,
    "join": _join,
    "list": _list,
    "indent": _indent,
    "sum": _sum,
    "b64encode": _b64encode,
    "b64decode": _b64decode,
}
#: Jinja tests we keep (`x is defined`, `n is even` ...)
_JINJA_TESTS = (
    "boolean", "defined", "divisibleby", "eq", "equalto", "even", "false", "float", "ge", "gt", "greaterthan", "in",
    "integer", "iterable", "le", "lower", "lessthan", "lt", "mapping", "ne", "none", "number", "odd", "sequence",
    "string", "true", "undefined", "upper", "==", "!=", "<", "<=", ">", ">=",
)


def _guarded(function: Callable[..., Any]) -> Callable[..., Any]:
    """Check the time budget before a filter and the size of what it returns."""

    @functools.wraps(function)  # keeps jinja's pass_context/pass_environment marks
    def run(*args: Any, **kwargs: Any) -> Any:
        _budget().check()
        try:
            result = function(*args, **kwargs)
        except TemplateError:
            raise
        except (TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
            raise TemplateError(f"{function.__name__.removeprefix('do_').lstrip('_')}: {exc}") from None
        return check_text(result, function.__name__.removeprefix("do_").lstrip("_"))

    return run


FILTERS: dict[str, Callable[..., Any]] = {
    **{name: _guarded(jinja_filters.FILTERS[name]) for name in _JINJA_FILTERS},
    **{name: _guarded(function) for name, function in _OUR_FILTERS.items()},
}
TESTS: dict[str, Callable[..., Any]] = {name: jinja_tests.TESTS[name] for name in _JINJA_TESTS}

#: the names loops and concatenation are routed through (not reachable from a template:
#: validation refuses names it does not know, and these are not identifiers users write)
LOOP_FILTER = "kt_loop_budget"
CONCAT_FILTER = "kt_concat"


def _loop_budget(iterable: Any) -> Iterator[Any]:
    budget = _budget()
    if isinstance(iterable, Undefined):
        iter(iterable)  # raises, naming what is missing
    if not isinstance(iterable, (Mapping, list, tuple, str)) and not hasattr(iterable, "__next__"):
        raise TemplateError(f"cannot loop over {describe(iterable)}")
    for item in iterable:
        budget.iterations += 1
        if budget.iterations > budget.limits.max_iterations:
            raise TemplateLimitExceeded(
                f"template loops ran more than {budget.limits.max_iterations:,} times; simplify it"
            )
        budget.check()
        yield item


def _concat(parts: list[Any]) -> str:
    limit = _budget().limits.max_text
    texts: list[str] = []
    size = 0
    for part in parts:
        text = _string(part)
        size += len(text)
        if size > limit:
            raise _too_long("'~'", size, limit)
        texts.append(text)
    return "".join(texts)


def _build(comments: bool) -> _Sandbox:
    env = _Sandbox(
        undefined=Missing,
        keep_trailing_newline=True,  # a YAML `|` block ends with a newline: keep it
        autoescape=False,
        finalize=_finalize,
        # without comments, `{#` is text (shell's ${#VAR}); see `environment()`
        **({} if comments else {"comment_start_string": "\x00{#\x00", "comment_end_string": "\x00#}\x00"}),
    )
    env.globals.clear()
    env.filters = {**FILTERS, LOOP_FILTER: _loop_budget, CONCAT_FILTER: _concat}
    env.tests = dict(TESTS)
    return env


def _finalize(value: Any) -> Any:
    """What `{{ x }}` writes into text: strings as they are, other values as JSON."""
    if isinstance(value, (str, Undefined)):
        return value
    try:
        return json.dumps(plain(value))
    except (TypeError, ValueError):
        raise TemplateError(f"cannot write {describe(value)} as text") from None


_ENVIRONMENTS: dict[bool, _Sandbox] = {}


def environment(text: str = "") -> _Sandbox:
    """The environment for `text`: with `{# comments #}`, unless the text has a `{#` and no
    `#}` at all — then `{#` is plain text (shell's `${#VAR}` needs no escaping)."""
    comments = not ("{#" in text and "#}" not in text)
    env = _ENVIRONMENTS.get(comments)
    if env is None:
        env = _ENVIRONMENTS[comments] = _build(comments)
    return env


class _RouteThroughLimits(NodeTransformer):
    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 (jinja's visitor naming)
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, LOOP_FILTER, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        parts = nodes.List(list(node.nodes), lineno=node.lineno)
        return nodes.Filter(parts, CONCAT_FILTER, [], [], None, None, lineno=node.lineno)


def route_through_limits(template: nodes.Template) -> nodes.Template:
    """Rewrite a parsed template so loops count against the budget and `~` checks sizes."""
    result = _RouteThroughLimits().visit(template)
    assert isinstance(result, nodes.Template)
    return result
