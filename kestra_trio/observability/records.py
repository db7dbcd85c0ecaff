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


@dataclass(slots=True)
class LostEntries:
    """Log entries of one task (or of the execution itself) that could not be written: the
    database refused writes until the engine had to give up. Stored as one ERROR entry at
    the place of the gap, and added to `executions.log_entries_lost`."""

    execution_id: str
    task_id: str | None
    count: int
    first_at: int  # timestamp of the first entry lost (Unix ms)
    last_at: int
    cause: str

    def add(self, count: int, first_at: int, last_at: int, cause: str) -> None:
        self.count += count
        self.first_at = min(self.first_at, first_at)
        self.last_at = max(self.last_at, last_at)
        self.cause = cause

    def gap_entry(self) -> LogEntry:
        """The ERROR line that stands where the lost entries would be (timestamp of the first)."""
        whose = f"of task {self.task_id}" if self.task_id is not None else "of the execution"
        noun = "log line" if self.count == 1 else "log lines"
        when = _utc_ms(self.first_at) if self.first_at == self.last_at else f"from {_utc_ms(self.first_at)} to {_utc_ms(self.last_at)}"
        return LogEntry(
            self.execution_id,
            self.task_id,
            LogLevel.ERROR,
            "scheduler" if self.task_id is None else "worker",
            f"{self.count:,} {noun} {whose} ({when}) could not be written to the database and are lost: "
            f"{self.cause} [DATABASE_ERROR]",
            {
                "reason_code": "DATABASE_ERROR",
                "lost_entries": self.count,
                "first_lost_at": self.first_at,
                "last_lost_at": self.last_at,
                "cause": self.cause,
            },
            self.first_at,
        )


def _utc_ms(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


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
