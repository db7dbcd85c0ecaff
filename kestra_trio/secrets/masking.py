"""Masker: replaces known secret values with a fixed-length mask before anything is stored or shown.

The mask has a fixed length so it does not reveal the secret's length. Besides the value
itself it catches its common encodings: base64 (standard and URL-safe, with or without
padding), URL-encoding, and the escaped forms JSON and Python's repr give it (how a secret
appears inside an error message or a JSON log line). A multi-line secret (a PEM key, a
service-account JSON) is also masked line by line, because programs print it a line at a
time and every log entry is one line. Values (and lines) shorter than MIN_SECRET_LENGTH
are not masked (masking every "a" would destroy the logs); docs/observability.md says so.

Text cut short (a log line over the line limit, an SDK record over its size) may end in the
first characters of a secret, or begin with its last ones: :meth:`Masker.mask_cut` masks
those too, down to one character, since the rest of the secret that would identify them is
gone (docs/observability.md, "At a cut").
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
        self._variants = sorted(variants, key=len, reverse=True)
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

    def mask_cut(self, text: str, *, dropped_before: bool = False, dropped_after: bool = True) -> str:
        """`mask` for text that was cut: with ``dropped_after``, a secret's beginning (any proper
        prefix of any form, even one character) at the end of ``text`` is masked as well; with
        ``dropped_before``, a secret's ending at its start. Cut lines are rare: not a hot path."""
        if self._pattern is None or not text:
            return text
        spans = [match.span() for match in self._pattern.finditer(text)]
        if dropped_before and (size := self._partial_start(text)):
            spans.insert(0, (0, size))
        if dropped_after and (size := self._partial_end(text)):
            spans.append((len(text) - size, len(text)))
        parts: list[str] = []
        pos, start, end = 0, -1, -1
        for span_start, span_end in sorted(spans):
            if span_start < end:  # overlaps the open span: one mask for both
                end = max(end, span_end)
                continue
            if end >= 0:
                parts += (text[pos:start], MASK)
                pos = end
            start, end = span_start, span_end
        if end >= 0:
            parts += (text[pos:start], MASK)
            pos = end
        parts.append(text[pos:])
        return "".join(parts)

    def _partial_end(self, text: str) -> int:
        """Length of the longest end of ``text`` that is a proper prefix of a secret's form."""
        best = 0
        for variant in self._variants:
            window = text[-(len(variant) - 1) :]
            at = window.find(variant[0])
            while 0 <= at and len(window) - at > best:
                if variant.startswith(window[at:]):
                    best = len(window) - at
                    break
                at = window.find(variant[0], at + 1)
        return best

    def _partial_start(self, text: str) -> int:
        """Length of the longest start of ``text`` that is a proper suffix of a secret's form."""
        best = 0
        for variant in self._variants:
            window = text[: len(variant) - 1]
            at = window.rfind(variant[-1])
            while at + 1 > best:
                if variant.endswith(window[: at + 1]):
                    best = at + 1
                    break
                at = window.rfind(variant[-1], 0, at)
        return best

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
