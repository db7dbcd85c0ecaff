"""Run-time inputs: `--input key=value` text -> typed values, checked against the workflow.

Every problem is collected first and reported in one InputError, so a user fixes all of
them in one go instead of one per run.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from kestra_trio.config import ascii_float, ascii_int
from kestra_trio.errors import InputError
from kestra_trio.model.workflow import InputSpec, Workflow

__all__ = ["coerce_inputs", "coerce_value", "parse_input_args"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


def parse_input_args(items: Sequence[str]) -> dict[str, str]:
    """`["name=world", "n=3"]` -> `{"name": "world", "n": "3"}` (split on the first `=`).

    Raises:
        InputError: an item has no `=` or an empty name, or a name is given twice (which of
            two values was meant is a guess we do not make).
    """
    from kestra_trio.sdk.protocol import has_surrogate

    result: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"--input {item!r} must be NAME=VALUE (e.g. --input name=world)")
        if has_surrogate(item):  # argv bytes that are not UTF-8 arrive as lone surrogates
            raise InputError(f"--input {name}: the value is not valid UTF-8 text")
        if name in result:
            raise InputError(f"--input {name} is given twice ({result[name]!r} and {value!r}); give it once")
        result[name] = value
    return result


def coerce_inputs(workflow: Workflow, raw: Mapping[str, str]) -> dict[str, Any]:
    """Apply defaults and convert each given value to its declared type.

    Optional inputs that are neither given nor defaulted are present as None, so that
    `{{ inputs.NAME }}` always resolves.

    Raises:
        InputError: unknown names, missing required inputs or values of the wrong type,
            all listed in one message.
    """
    declared = {spec.name: spec for spec in workflow.inputs}
    problems: list[str] = []
    for name in raw:
        if name not in declared:
            problems.append(f"unknown input {name!r}{_suggest(name, declared)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in raw:
            try:
                values[name] = coerce_value(spec, raw[name])
            except ValueError as exc:
                problems.append(str(exc))
        elif spec.required:
            problems.append(f"missing required input {name!r} (pass --input {name}=VALUE)")
        else:
            values[name] = spec.default
    if problems:
        raise InputError("invalid inputs: " + "; ".join(problems))
    return values


def coerce_value(spec: InputSpec, text: str) -> Any:
    """Convert one `--input` text to the spec's type; ValueError says what was expected."""
    kind = spec.type
    if kind == "string":
        return text
    stripped = text.strip(" \t\r\n")  # ASCII space only: a no-break space is not "as written"
    # ASCII digits as written: Python's int()/float() would also take `1_000` and other
    # scripts' digits (`٣`), which nobody means on a command line
    if kind == "integer":
        try:
            number = ascii_int(stripped)
        except ValueError:
            raise ValueError(f"input {spec.name!r} must be an integer, got {_shown(text)}") from None
        if not INT64_MIN <= number <= INT64_MAX:  # what every store and plugin language holds exactly
            raise ValueError(f"input {spec.name!r} must be an integer between {INT64_MIN} and {INT64_MAX}, got {_shown(text)}")
        return number
    if kind == "number":
        try:
            number = ascii_float(stripped)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ValueError(f"input {spec.name!r} must be a number, got {text!r}")
        if number.is_integer() and "." not in stripped and "e" not in stripped.lower():
            return ascii_int(stripped)  # exact: a float would turn 30 digits into other digits
        return number
    if kind == "boolean":
        lowered = stripped.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"input {spec.name!r} must be true or false (or yes/no, y/n, on/off, 1/0), got {text!r}")
    from kestra_trio.sdk.protocol import loads_untrusted  # one definition of "real JSON"

    try:
        return loads_untrusted(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"input {spec.name!r} must be JSON ({exc.msg} at character {exc.pos})") from None
    except ValueError as exc:  # NaN / Infinity / overflow / nested too deeply
        raise ValueError(f"input {spec.name!r} must be JSON ({exc})") from None


def _shown(text: str) -> str:
    """A refused value as a message quotes it: bounded (a body may carry a 4,000-digit number)."""
    return repr(text) if len(text) <= 60 else f"{text[:40]!r}… ({len(text):,} characters)"


def _suggest(word: str, choices: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (declared: {', '.join(choices)})" if choices else " (this workflow declares no inputs)"
