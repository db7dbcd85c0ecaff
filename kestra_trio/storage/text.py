"""Make any value storable as SQLite UTF-8 text.

Python strings may hold lone surrogates (undecodable argv or file names, ``"\\ud800"`` from
some JSON) that SQLite's UTF-8 binding refuses, and a refused write must not be retried
forever. Writers call this only after such a refusal, so the fast path costs nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

REPLACEMENT = "\ufffd"


def encodable_text(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(REPLACEMENT if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def encodable(value: Any) -> Any:
    """A copy of `value` (str, dict, list, tuple, frozen dataclass) with lone surrogates replaced."""
    if isinstance(value, str):
        return encodable_text(value)
    if isinstance(value, dict):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(encodable(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: encodable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    return value
