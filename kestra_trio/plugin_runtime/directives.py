"""Outputs and metrics from any program: `::{"outputs": {...}}::` and `::{"metrics": [...]}::`
lines on stdout (Kestra's form), so a shell, Node or Go task needs no SDK to return data.

Pure: `parse_directive(line)` says whether a stdout line is such a line and what it holds;
`Reported` gathers what an attempt reported, under the same 16 MiB cap as a result file.
The runtimes' shared `LogEmitter` calls them for every stdout line (process, bubblewrap and
Docker alike); such lines are not log lines. A line that starts like one but cannot be read
is kept as an ordinary log line, with a WARN saying why (`Malformed`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from kestra_trio.model.template_errors import describe
from kestra_trio.sdk.protocol import MAX_RESULT_BYTES, loads_untrusted

__all__ = [
    "MAX_DIRECTIVE_BYTES",
    "MAX_METRICS",
    "METRIC_TYPES",
    "Directive",
    "Malformed",
    "Metric",
    "Reported",
    "is_candidate",
    "parse_directive",
]

#: the longest such line read whole (longer ones are cut, and their outputs refused)
MAX_DIRECTIVE_BYTES = MAX_RESULT_BYTES
#: metrics kept per attempt; past it the rest are dropped with one WARN
MAX_METRICS = 10_000
METRIC_TYPES = ("counter", "timer", "gauge")
MAX_METRIC_NAME = 256
MAX_METRIC_TAGS = 64
MAX_TAG_TEXT = 1024
_KEYS = ("outputs", "metrics")
#: what `streams.LineSplitter` appends to a line it had to cut
_CUT = re.compile(r" …\[line truncated: (\d+) bytes dropped\]$")


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    value: float
    type: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Directive:
    outputs: dict[str, Any] | None
    metrics: tuple[Metric, ...]
    size: int  # bytes of the line, counted against the outputs cap


@dataclass(frozen=True, slots=True)
class Malformed:
    """A line that starts like an outputs/metrics line but is not one: why."""

    reason: str
    #: the line was longer than MAX_DIRECTIVE_BYTES (the outputs it held are lost: an error)
    too_long: bool = False


def is_candidate(line: str) -> bool:
    """Cheap test for the hot path: does the line start with `::{` (spaces before it allowed)?"""
    return line[:3] == "::{" or (line[:1] in (" ", "\t") and line.lstrip(" \t")[:3] == "::{")


def parse_directive(line: str) -> Directive | Malformed:
    """What a candidate line (`is_candidate`) holds, or why it cannot be read."""
    text = line.strip(" \t")
    cut = _CUT.search(text)
    if cut is not None:
        return Malformed(
            f"the line is longer than {MAX_DIRECTIVE_BYTES // (1024 * 1024)} MiB "
            f"({int(cut.group(1)):,} bytes past it were dropped)",
            too_long=True,
        )
    if not text.endswith("}::"):
        return Malformed("it does not end with }:: (write the JSON object between :: and :: on one line)")
    body = text[2:-2]
    try:
        value = loads_untrusted(body)
    except ValueError as exc:
        return Malformed(f"not valid JSON between :: and :: ({_short(str(exc))})")
    if not isinstance(value, dict):  # pragma: no cover - `{...}` is always an object or invalid
        return Malformed("not a JSON object")
    unknown = [key for key in value if key not in _KEYS]
    if unknown or not value:
        shown = ", ".join(repr(key) for key in unknown[:3])
        return Malformed(f"unknown key {shown} (expected \"outputs\" and/or \"metrics\")" if unknown else "empty object")
    outputs = value.get("outputs")
    if "outputs" in value and not isinstance(outputs, dict):
        return Malformed(f'"outputs" must be a JSON object, got {describe(outputs)}')
    metrics: list[Metric] = []
    if "metrics" in value:
        raw = value["metrics"]
        if isinstance(raw, dict):
            raw = [raw]
        if not isinstance(raw, list):
            return Malformed(f'"metrics" must be a list of {{"name", "value", "tags"}} objects, got {describe(raw)}')
        for index, item in enumerate(raw):
            metric = _metric(item)
            if isinstance(metric, str):
                return Malformed(f"metrics[{index}]: {metric}")
            metrics.append(metric)
    return Directive(outputs, tuple(metrics), len(line.encode("utf-8", "replace")) if not line.isascii() else len(line))


def _metric(item: Any) -> Metric | str:
    if not isinstance(item, dict):
        return f"must be an object with name and value, got {describe(item)}"
    extra = [key for key in item if key not in ("name", "value", "tags", "type")]
    if extra:
        return f"unknown key {extra[0]!r} (a metric has name, value, tags and type)"
    name, number, tags, kind = item.get("name"), item.get("value"), item.get("tags", {}), item.get("type")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_METRIC_NAME:
        return f'"name" must be text of 1 to {MAX_METRIC_NAME} characters'
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        return f'metric {name!r}: "value" must be a number, got {describe(number)}'
    if not math.isfinite(float(number)) or (isinstance(number, int) and abs(number) > 2**63):
        return f'metric {name!r}: "value" is out of range'
    if kind is not None and kind not in METRIC_TYPES:
        return f'metric {name!r}: "type" must be one of {", ".join(METRIC_TYPES)}'
    if tags is None:
        tags = {}
    if not isinstance(tags, dict) or len(tags) > MAX_METRIC_TAGS:
        return f'metric {name!r}: "tags" must be an object of at most {MAX_METRIC_TAGS} text values'
    clean: dict[str, Any] = {}
    for key, tag in tags.items():
        if isinstance(tag, (dict, list)) or len(str(key)) > MAX_TAG_TEXT or len(str(tag)) > MAX_TAG_TEXT:
            return f"metric {name!r}: tag {str(key)[:40]!r} must be a short text, number or boolean"
        clean[str(key)] = tag
    return Metric(name, float(number), kind, clean)


class Reported:
    """What one attempt reported on stdout: merged outputs (later lines win key by key),
    metrics, and the error that fails the attempt when the outputs went past the cap."""

    __slots__ = ("outputs", "metrics", "problem", "dropped_metrics", "_bytes")

    def __init__(self) -> None:
        self.outputs: dict[str, Any] = {}
        self.metrics: list[Metric] = []
        self.problem: str | None = None
        self.dropped_metrics = 0
        self._bytes = 0

    @property
    def any_outputs(self) -> bool:
        return bool(self.outputs)

    def add(self, directive: Directive) -> None:
        """Take a parsed line in; past the cap the outputs are refused (`problem`)."""
        if directive.outputs is not None and self.problem is None:
            self._bytes += directive.size
            if self._bytes > MAX_DIRECTIVE_BYTES:
                self.problem = (
                    f'outputs written on stdout (::{{"outputs": ...}}:: lines) are larger than '
                    f"{MAX_DIRECTIVE_BYTES // (1024 * 1024)} MiB in all; write large data to a file and output its path"
                )
                self.outputs = {}
            else:
                self.outputs.update(directive.outputs)
        room = MAX_METRICS - len(self.metrics)
        self.metrics.extend(directive.metrics[: max(room, 0)])
        self.dropped_metrics += max(len(directive.metrics) - max(room, 0), 0)

    def refuse(self, malformed: Malformed) -> None:
        """A line too long to read: the outputs it held are lost, so the attempt fails."""
        if malformed.too_long and self.problem is None:
            self.problem = f"an outputs line on stdout could not be read: {malformed.reason}"
            self.outputs = {}


def _short(text: str) -> str:
    return text if len(text) <= 120 else text[:117] + "..."
