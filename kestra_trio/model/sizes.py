"""Byte sizes as written in workflow files: `256Mi`, `1Gi`, `100M`, `512k`, or a number of bytes."""

from __future__ import annotations

import re

__all__ = ["SIZE_PATTERN", "format_size", "parse_size"]

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
    "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3, "ti": 1024**4, "tib": 1024**4,
}
SIZE_PATTERN = r"^\s*[0-9]+(\.[0-9]+)?\s*([kKmMgGtT][iI]?[bB]?|[bB])?\s*$"
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")


def parse_size(value: str | int | float) -> int:
    """Bytes for `256Mi` (binary), `100M` (decimal), `4096`; ValueError says what to write."""
    if isinstance(value, bool):
        raise ValueError(f"must be a size such as 256Mi, 1Gi or 100M, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0 or value != value:
            raise ValueError(f"must be a size such as 256Mi, 1Gi or 100M, got {value!r}")
        return int(value)
    match = _SIZE.fullmatch(value)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS or not match.group(1).isascii():
        raise ValueError(f"must be a size such as 256Mi, 1Gi or 100M (Ki/Mi/Gi are 1024-based), got {value!r}")
    return int(float(match.group(1)) * _UNITS[unit])


def format_size(size: int) -> str:
    """`268435456` -> `256Mi`; sizes that are not whole units stay in bytes."""
    for suffix, factor in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{suffix}"
    return f"{size}B" if size else "0"
