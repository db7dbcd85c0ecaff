"""The one place where untrusted plugin bytes become log lines.

Pure core (no I/O): :class:`LineSplitter` (bytes → bounded, decoded lines), :func:`classify`
(line → level), :class:`OutputBudget` (per-task volume cap) and :func:`for_terminal`
(display-safe text). :func:`pump_lines` is the thin trio driver reading a pipe.

Memory is bounded whatever a plugin writes: a line longer than ``max_line`` bytes keeps
its first ``max_line`` bytes and the rest is *counted* while discarded, never buffered.
The dropped part is never seen, so a secret straddling the cut could not be masked later:
the kept part goes through ``mask_cut`` before the cut marker is appended.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import trio

from kestra_trio.observability.records import LogLevel
from kestra_trio.sdk.protocol import decode_log_record

Stream = Literal["stdout", "stderr"]

MAX_LINE_BYTES = 64 * 1024
READ_SIZE = 64 * 1024
DEFAULT_OUTPUT_LIMIT = 10 * 1024 * 1024
TAIL_BYTES = 64 * 1024


def _utf8_cut(data: bytes | bytearray, limit: int) -> int:
    """The largest cut ≤ limit that does not split a UTF-8 sequence (never below limit-3)."""
    if limit >= len(data):
        return len(data)
    cut = limit
    while cut > limit - 3 and cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if (data[cut] & 0xC0) != 0x80 else limit


class LineSplitter:
    """Incremental splitter: ``feed(bytes) -> lines``, ``close() -> last line``.

    Splits on ``\\n``, drops one ``\\r`` before it, decodes UTF-8 with ``errors="replace"``
    and cuts lines over ``max_line`` bytes, appending ``…[line truncated: N bytes dropped]``.
    With ``max_directive``, a line starting with ``::{`` (an outputs line, see
    ``directives``) may grow to that many bytes before it is cut. ``mask_cut`` (the task's
    ``Masker.mask_cut``) masks the kept part of a cut line, including a secret's first
    characters at the cut; lines that are not cut do not pay for it.
    """

    def __init__(
        self,
        max_line: int = MAX_LINE_BYTES,
        max_directive: int | None = None,
        mask_cut: Callable[[str], str] | None = None,
    ) -> None:
        self.max_line = max_line
        self.max_directive = max_directive
        self.mask_cut = mask_cut
        self._buf = bytearray()
        self._dropped = 0  # bytes of the current line discarded so far
        self._last_cr = False  # last byte of the current line was \r
        self.bytes_in = 0
        self.lines_out = 0

    def feed(self, data: bytes) -> list[str]:
        self.bytes_in += len(data)
        lines: list[str] = []
        start, end = 0, len(data)
        while start < end:
            nl = data.find(b"\n", start)
            stop = end if nl < 0 else nl
            self._append(data, start, stop)
            if nl < 0:
                break
            lines.append(self._finish_line())
            start = nl + 1
        return lines

    def close(self) -> list[str]:
        """Flush a last line that had no newline."""
        if self._buf or self._dropped:
            return [self._finish_line()]
        return []

    def _append(self, data: bytes, start: int, stop: int) -> None:
        if stop == start:
            return
        self._last_cr = data[stop - 1] == 0x0D
        size, limit = stop - start, self.max_line
        if size > limit - len(self._buf) and self.max_directive and not self._dropped and self._directive(data, start):
            limit = self.max_directive  # (checked only for lines past max_line: the hot path pays nothing)
        room = limit - len(self._buf)
        if self._dropped:
            self._dropped += size
        elif size <= room:
            self._buf += data[start:stop]
        else:  # keep one byte past the limit to see whether the cut splits a character
            self._buf += data[start : start + room + 1]
            self._dropped += size - room - 1
            cut = _utf8_cut(self._buf, limit)
            self._dropped += len(self._buf) - cut
            del self._buf[cut:]

    def _directive(self, data: bytes, start: int) -> bool:
        head = bytes(self._buf[:8]) if len(self._buf) >= 8 else bytes(self._buf) + data[start : start + 8]
        return head.lstrip(b" \t")[:3] == b"::{"

    def _finish_line(self) -> str:
        if self._last_cr:
            if self._dropped:
                self._dropped -= 1
            else:
                del self._buf[-1:]
        text = self._buf.decode("utf-8", errors="replace")
        if self._dropped:
            if self.mask_cut is not None:
                text = self.mask_cut(text)
            text += f" …[line truncated: {self._dropped} bytes dropped]"
        self._buf = bytearray()
        self._dropped = 0
        self._last_cr = False
        self.lines_out += 1
        return text


# ---------------------------------------------------------------- level detection

_LEVEL_WORDS = {
    "TRACE": LogLevel.DEBUG,
    "DEBUG": LogLevel.DEBUG,
    "INFO": LogLevel.INFO,
    "NOTICE": LogLevel.INFO,
    "WARN": LogLevel.WARN,
    "WARNING": LogLevel.WARN,
    "ERROR": LogLevel.ERROR,
    "CRITICAL": LogLevel.ERROR,
    "FATAL": LogLevel.ERROR,
}
_WORDS = "|".join(_LEVEL_WORDS)
_TIMESTAMP = (
    r"(?:\[?(?:\d{4}-\d{2}-\d{2}[T ])?\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\]?"
    r"(?:\s+-)?\s+)?"
)
# `ERROR x`, `ERROR: x`, `WARNING:root:x` (uppercase word); `Error: x` (title case + colon);
# `[error] x` / `[ERROR]` (any case); `level=error` / logfmt `time=... level=warn` (any case)
_PLAIN_LEVEL = re.compile(
    rf"^\s*{_TIMESTAMP}(?:"
    rf"(?P<upper>{_WORDS})(?=[:\s]|$)"
    rf"|(?P<title>(?i:{_WORDS}))(?=:)"
    rf"|\[(?P<bracket>(?i:{_WORDS}))\]"
    rf"|(?:[\w.-]+=(?:\"[^\"]*\"|\S+)\s+)*?level=\"?(?P<logfmt>(?i:{_WORDS}))\"?(?=\s|$)"
    r")"
)


def plain_level(line: str) -> LogLevel | None:
    """The level a plain line announces at its start, or None."""
    if not line:
        return None
    match = _PLAIN_LEVEL.match(line)
    if match is None:
        return None
    word = match.group("upper") or match.group("title") or match.group("bracket") or match.group("logfmt")
    if match.group("title") and not (word.istitle() or word.isupper()):
        return None
    return _LEVEL_WORDS[word.upper()]


def classify(line: str, stream: Stream) -> tuple[LogLevel, str, dict[str, Any]]:
    """``(level, message, metadata)`` for one line.

    A stderr line that is an SDK log record takes its level/message/metadata. A plain line
    that starts with a level token gets that level; otherwise stdout is INFO and stderr
    is WARN, never ERROR just for being on stderr.
    """
    if stream == "stderr" and line[:1] in ("{", " ", "\t"):
        record = decode_log_record(line)
        if record is not None:
            level, message, metadata = record
            return LogLevel(level), message, metadata
    level = plain_level(line)
    if level is None:
        level = LogLevel.INFO if stream == "stdout" else LogLevel.WARN
    return level, line, {}


# ---------------------------------------------------------------- terminal safety

_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, clears
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: titles, hyperlinks
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS/SOS/PM/APC strings
    r"|\x1b[ -/]*[0-~]"  # two-byte escapes
)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: str) -> str:
    """Text safe to print: ANSI escape sequences removed, other control and bidi-override
    characters shown as ``\\xNN`` / ``\\uNNNN``; tabs kept. Storage keeps the text as written."""
    if text.isprintable():
        return text
    return _CONTROL.sub(_visible, _ANSI.sub("", text))


# ---------------------------------------------------------------- volume cap


@dataclass(frozen=True, slots=True)
class TruncationReport:
    """What the budget withheld: the tail to emit at the end, and how much was dropped."""

    tail: list[tuple[Stream, str]]
    dropped_bytes: int
    dropped_lines: int
    limit: int

    def message(self) -> str:
        mib = self.limit / (1024 * 1024)
        return (
            f"output truncated: the {mib:g} MiB per-task limit was reached; "
            f"{self.dropped_lines} line(s) ({self.dropped_bytes} bytes) were not stored; "
            f"the last {len(self.tail)} line(s) follow"
        )


class OutputBudget:
    """Per-task output cap shared by stdout and stderr.

    Under the limit every line is emitted. Past it, lines go to a ring that keeps the last
    ``tail_bytes`` of output; everything pushed out of the ring is counted as dropped. The
    plugin is never blocked: the caller keeps draining the pipe either way.
    """

    def __init__(self, limit: int = DEFAULT_OUTPUT_LIMIT, tail_bytes: int = TAIL_BYTES) -> None:
        self.limit = limit
        self.tail_bytes = tail_bytes
        self.used = 0
        self._ring: collections.deque[tuple[Stream, str, int]] = collections.deque()
        self._ring_bytes = 0
        self.dropped_bytes = 0
        self.dropped_lines = 0

    @property
    def exhausted(self) -> bool:
        return self.used >= self.limit

    def admit(self, stream: Stream, line: str) -> bool:
        """True: emit the line now. False: the budget keeps it for the tail (or drops it)."""
        size = (len(line) if line.isascii() else len(line.encode("utf-8", errors="replace"))) + 1
        if self.used + size <= self.limit:
            self.used += size
            return True
        self.used = self.limit
        self._ring.append((stream, line, size))
        self._ring_bytes += size
        while self._ring_bytes > self.tail_bytes and len(self._ring) > 1:
            _, _, old = self._ring.popleft()
            self._ring_bytes -= old
            self.dropped_bytes += old
            self.dropped_lines += 1
        return False

    def finish(self) -> TruncationReport | None:
        """None when nothing was withheld; else the tail to emit plus the counts."""
        if not self._ring:
            return None
        tail = [(stream, line) for stream, line, _ in self._ring]
        self._ring.clear()
        self._ring_bytes = 0
        return TruncationReport(tail, self.dropped_bytes, self.dropped_lines, self.limit)


# ---------------------------------------------------------------- trio driver


async def pump_lines(
    receive_some: Callable[[int], Awaitable[bytes]],
    splitter: LineSplitter,
    on_lines: Callable[[list[str]], Awaitable[None]],
    *,
    read_size: int = READ_SIZE,
) -> None:
    """Read until ``receive_some`` returns b"" (EOF), handing complete lines to ``on_lines``.

    Lines are handed over chunk by chunk as they arrive, never collected until exit.
    """
    while True:
        try:
            chunk = await receive_some(read_size)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            chunk = b""
        if not chunk:
            break
        lines = splitter.feed(chunk)
        if lines:
            await on_lines(lines)
    last = splitter.close()
    if last:
        await on_lines(last)
