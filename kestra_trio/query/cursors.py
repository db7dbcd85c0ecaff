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


class InvalidCursor(UsageError):
    """the cursor is not one this server handed out; start again without it."""


def encode_cursor(*key: Any) -> str:
    text = json.dumps(list(key), separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    """The key a cursor holds, checked against `types` (one per part).

    Raises:
        InvalidCursor: not base64 JSON of a list of exactly those types.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidCursor() from None
    if (
        not isinstance(values, list)
        or len(values) != len(types)
        or not all(type(value) is kind for value, kind in zip(values, types, strict=True))
    ):
        raise InvalidCursor()
    return tuple(values)
