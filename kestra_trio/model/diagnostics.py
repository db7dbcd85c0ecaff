"""Small wording helpers every validation message uses: paths, kinds of values, did-you-mean."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["did_you_mean", "join_path", "kind_of"]

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def join_path(parent: str, key: str | int) -> str:
    """`join_path("tasks", 2)` -> `tasks[2]`; keys that are not plain words are quoted."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if _PLAIN_KEY.fullmatch(key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{json.dumps(key)}]"


def kind_of(value: Any) -> str:
    """How a wrong value is described in messages: `got a list`."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest choice, or "" when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
