"""Log entries and audit events as plain values (no I/O)."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class LogLevel(enum.StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


LEVEL_ORDER = {LogLevel.DEBUG: 10, LogLevel.INFO: 20, LogLevel.WARN: 30, LogLevel.ERROR: 40}


#: where every recorded timestamp comes from; the test harness (`kestra_trio.testing`) points
#: it at trio's clock while time skips, so a skipped 10-minute backoff is 10 minutes in the records
_clock_ns: Callable[[], int] = time.time_ns


def now_ms() -> int:
    return _clock_ns() // 1_000_000


def use_clock(clock_ns: Callable[[], int]) -> Callable[[], int]:
    """Make `now_ms` read `clock_ns` (nanoseconds since the epoch); returns the previous clock."""
    global _clock_ns
    previous, _clock_ns = _clock_ns, clock_ns
    return previous


def iso_ms(ms: int | None) -> str | None:
    """Unix ms → `2026-11-21T10:15:30.123Z` (UTC, millisecond precision)."""
    if ms is None:
        return None
    seconds, millis = divmod(int(ms), 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


@dataclass(slots=True)
class LogEntry:
    """One line in `execution_logs`. `source` is scheduler | worker | plugin:<ns>/<plugin>.<action>."""

    execution_id: str
    task_id: str | None
    level: LogLevel
    source: str
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)
    timestamp: int = field(default_factory=now_ms)


class AuditEventType(enum.StrEnum):
    CREATED = "CREATED"
    QUEUED = "QUEUED"  # waiting in a queue for a worker (metadata.queue)
    STARTED = "STARTED"
    STATE_CHANGE = "STATE_CHANGE"  # execution or task state change (metadata.entity)
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    TIMEOUT = "TIMEOUT"  # execution or task timeout (metadata.scope)
    RETRY = "RETRY"


@dataclass(slots=True)
class AuditEvent:
    execution_id: str
    event_type: AuditEventType
    metadata: dict[str, Any] = field(default_factory=dict)
    timestamp: int = field(default_factory=now_ms)
