"""Durations as written in workflow files (`500ms`, `30s`, `1m30s`) and as shown to people.

The parser is a small hand-written regex on purpose: the usual libraries either do not
know `ms` or accept far more (ISO 8601, words) than we want to document and support.
"""

from __future__ import annotations

import math
import re

__all__ = ["DURATION_EXAMPLES", "format_duration", "parse_duration"]

DURATION_EXAMPLES = "500ms, 30s, 5m, 2h, 1d"

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"  # ASCII digits: \d would also take other scripts' digits (٣)
# the units must appear in decreasing order, each at most once: `1h30m`, not `30m1h`
_COMPOUND = re.compile(
    rf"(?:(?P<d>{_NUMBER})d)?(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m(?!s))?"
    rf"(?:(?P<s>{_NUMBER})s)?(?:(?P<ms>{_NUMBER})ms)?"
)
_PLAIN = re.compile(_NUMBER)

#: the longest duration we accept anywhere (timeouts, delays, --since): 10 years
MAX_SECONDS = 10 * 365 * 86400.0


def parse_duration(text: str | int | float) -> float:
    """Return the duration in seconds.

    Accepts `500ms`, `30s`, `5m`, `2h`, `1d`, compounds such as `1m30s` or `1h 30m`, and
    plain numbers (a YAML `timeout: 5` means five seconds).

    Raises:
        ValueError: with a message that shows valid examples.
    """
    seconds = _parse(text)
    if seconds > MAX_SECONDS:
        raise ValueError(f"duration {text!r} is too long (at most 10 years, e.g. 3650d)")
    return seconds


def _parse(text: str | int | float) -> float:
    if isinstance(text, bool):
        raise ValueError(f"invalid duration {text!r} (examples: {DURATION_EXAMPLES})")
    if isinstance(text, (int, float)):
        try:
            seconds = float(text)
        except OverflowError:
            seconds = math.inf
        if math.isnan(seconds) or seconds < 0:
            raise ValueError(f"invalid duration {text!r} (must be a positive number of seconds)")
        return seconds
    if not isinstance(text, str):
        raise ValueError(f"invalid duration {text!r} (examples: {DURATION_EXAMPLES})")
    compact = "".join(text.split())
    if _PLAIN.fullmatch(compact):
        return float(compact)
    match = _COMPOUND.fullmatch(compact)
    if not compact or match is None or not any(match.groupdict().values()):
        raise ValueError(f"invalid duration {text!r} (examples: {DURATION_EXAMPLES})")
    return sum(
        float(amount) * _UNIT_SECONDS[unit]
        for unit, amount in match.groupdict().items()
        if amount is not None
    )


def format_duration(seconds: float) -> str:
    """Human form for tables and timelines: `500ms`, `2.5s`, `1m 30s`, `2h 5m`, `1d 2h`.

    Shows at most two units; the second is dropped when it is zero.
    """
    if not math.isfinite(seconds):
        return "-"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        text = f"{seconds:.1f}".rstrip("0").rstrip(".")
        return f"{text}s"
    total = int(round(seconds))
    for unit, size, sub_unit, sub_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "m", 60),
        ("m", 60, "s", 1),
    ):
        if total >= size:
            major, rest = divmod(total, size)
            minor = rest // sub_size
            return f"{major}{unit} {minor}{sub_unit}" if minor else f"{major}{unit}"
    return f"{total}s"  # pragma: no cover - unreachable, total >= 60 here
