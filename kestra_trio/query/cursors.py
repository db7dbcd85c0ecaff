"""Opaque keyset cursors: what a page hands back so the next page starts right after it.

A cursor is the sort key of the last row of a page, as URL-safe base64 of a JSON list: the
CLI and the HTTP API pass it back unchanged, and a cursor that was tampered with is a clear
error (exit 2 / HTTP 400), never a crash or a silently wrong page.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from kestra_trio.errors import UsageError

#: the largest integer SQLite stores (int64); a cursor's numbers are ids and epoch milliseconds
MAX_KEY_INT = 2**63 - 1


class InvalidCursor(UsageError):
    """the cursor is not one this server handed out; start again without it."""


def encode_cursor(*key: Any) -> str:
    text = json.dumps(list(key), separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    """The key a cursor holds, checked against `types` (one per part): whole numbers in
    0..MAX_KEY_INT (ids, epoch milliseconds), text that encodes as UTF-8 — what SQLite can
    bind, so a forged cursor is a 400 rather than an OverflowError in the query.

    Raises:
        InvalidCursor: not base64 JSON of a list of exactly those types and ranges.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidCursor() from None
    if (
        not isinstance(values, list)
        or len(values) != len(types)
        or not all(type(value) is kind and _bindable(value) for value, kind in zip(values, types, strict=True))
    ):
        raise InvalidCursor()
    return tuple(values)


def _bindable(value: object) -> bool:
    if isinstance(value, int):
        return 0 <= value <= MAX_KEY_INT
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (`"\\ud800"` in the JSON)
            return False
    return True
