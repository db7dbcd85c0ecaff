"""Masker: replaces known secret values with a fixed-length mask before anything is stored or shown.

The mask has a fixed length so it does not reveal the secret's length. Besides the value
itself it catches its common encodings: base64 (standard and URL-safe, with or without
padding), URL-encoding, and the escaped forms JSON and Python's repr give it (how a secret
appears inside an error message or a JSON log line). A multi-line secret (a PEM key, a
service-account JSON) is also masked line by line, because programs print it a line at a
time and every log entry is one line. Values (and lines) shorter than MIN_SECRET_LENGTH
are not masked (masking every "a" would destroy the logs); docs/observability.md says so.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***SECRET***"
MIN_SECRET_LENGTH = 3


def _variants(value: str) -> set[str]:
    raw = value.encode("utf-8", "surrogatepass")
    found = {value, quote(value, safe=""), quote_plus(value), quote(value)}
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = encoded.decode("ascii")
        found.add(text)
        found.add(text.rstrip("="))
    found.add(json.dumps(value)[1:-1])
    found.add(json.dumps(value, ensure_ascii=False)[1:-1])
    found.add(repr(value)[1:-1])
    lines = value.splitlines()
    if len(lines) > 1:
        found.update(line.strip() for line in lines)
    return {v for v in found if len(v.strip()) >= MIN_SECRET_LENGTH}


class Masker:
    """Pure text replacement; `mask_value` walks JSON-like structures (keys included)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        variants: set[str] = set()
        for value in secrets:
            if value and len(value) >= MIN_SECRET_LENGTH:
                variants |= _variants(value)
        self._pattern = (
            re.compile("|".join(re.escape(v) for v in sorted(variants, key=len, reverse=True)))
            if variants
            else None
        )

    @property
    def active(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def mask_value(self, value: Any) -> Any:
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {self.mask(str(k)): self.mask_value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.mask_value(v) for v in value]
        return value


NO_SECRETS = Masker()
