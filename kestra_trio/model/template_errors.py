"""Template errors and limits: what every template module shares (no Jinja import here,
so validating a workflow of plain `{{ a.b }}` paths never loads Jinja)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kestra_trio.errors import KestraTrioError

__all__ = ["DEFAULT_LIMITS", "TemplateError", "TemplateLimitExceeded", "TemplateLimits", "UnsupportedTemplate", "describe"]


class TemplateError(KestraTrioError):
    """a `{{ ... }}` template is malformed or refers to something that does not exist."""


class UnsupportedTemplate(TemplateError):
    """Jinja syntax templates do not offer here: includes, macros, calls, block capture ..."""


class TemplateLimitExceeded(TemplateError):
    """a template went past a size, loop or time limit (a hostile or runaway template)."""


@dataclass(frozen=True, slots=True)
class TemplateLimits:
    """What one render may cost. The defaults fit a 16 MiB task output passed on as text."""

    #: characters in any one string a template builds, and in its rendered text
    max_text: int = 16 * 1024 * 1024
    #: loop iterations over the whole render (nested loops multiply)
    max_iterations: int = 100_000
    #: a list made from a string (`| list`) or a sequence repeated with `*`
    max_items: int = 1_000_000
    #: bits of an integer an operator may produce (`10 ** 10 ** 10` stops here)
    max_int_bits: int = 4096
    #: wall-clock seconds for one render (the engine's event loop waits for it)
    max_seconds: float = 2.0


DEFAULT_LIMITS = TemplateLimits()


def describe(value: Any) -> str:
    """A value's JSON kind in messages: `is a number, it has no 'x'`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__
