"""Retention policy, pure: which rows have expired, and when a table is too big.

Nothing here touches the database or the clock; `purge.py` is the I/O driver.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from kestra_trio.config import DEFAULT_RETENTION_DAYS, RETENTION_ENV
from kestra_trio.config import retention_days as configured_retention_days
from kestra_trio.errors import ConfigError

DAY_MS = 86_400_000
#: rows deleted per transaction, so the writer lock is never held for long
BATCH_SIZE = 1000
#: seconds a long-running engine waits between two cleanups
CLEANUP_INTERVAL = 24 * 3600.0

SIZE_WARNING_ENV = "KESTRA_TRIO_SIZE_WARNING_BYTES"
DEFAULT_SIZE_WARNING_BYTES = 1024**3  # 1 GB

#: the tables retention deletes from (both have `id` and `timestamp` columns)
LOGS_TABLE = "execution_logs"
AUDIT_TABLE = "execution_audit_events"


def cutoff_ms(now_ms: int, retention_days: int) -> int:
    """Rows whose `timestamp` is strictly below this Unix-ms value have expired.

    Raises:
        ValueError: `retention_days` is not a positive whole number.
    """
    if isinstance(retention_days, bool) or not isinstance(retention_days, int) or retention_days < 1:
        raise ValueError(f"retention_days must be a whole number of days >= 1, got {retention_days!r}")
    return now_ms - retention_days * DAY_MS


def is_expired(timestamp_ms: int, cutoff: int) -> bool:
    return timestamp_ms < cutoff


def batch_count(rows: int, batch_size: int = BATCH_SIZE) -> int:
    """How many transactions deleting `rows` rows takes."""
    return math.ceil(rows / batch_size) if rows > 0 else 0


def format_ms(timestamp_ms: int | None) -> str:
    """`2026-10-22 08:39:14 UTC`, or `never` for None."""
    if timestamp_ms is None:
        return "never"
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_bytes(size: int | float) -> str:
    """Binary units with the usual short names: 1 GB = 1024**3 bytes."""
    value = float(size)
    if abs(value) < 1024:
        return f"{int(value)} B"
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if abs(value) < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} TB"


@dataclass(frozen=True, slots=True)
class CleanupReport:
    """What one cleanup did (or, with `dry_run`, would do)."""

    logs_deleted: int
    audit_deleted: int
    #: Unix ms; rows with `timestamp < cutoff` expired
    cutoff: int
    dry_run: bool
    #: transactions used (or needed, for a dry run): at most `batch_size` rows each
    batches: int = 0
    retention_days: int = 0

    @property
    def cutoff_text(self) -> str:
        return format_ms(self.cutoff)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cutoff_text": self.cutoff_text}


@dataclass(frozen=True, slots=True)
class DbStats:
    """Row counts and approximate on-disk sizes (bytes, each table with its indexes)."""

    logs_rows: int
    audit_rows: int
    logs_bytes: int
    audit_bytes: int
    #: size of the main database file (0 for an in-memory database)
    file_bytes: int
    #: size of the `-wal` file next to it (0 if absent)
    wal_bytes: int
    #: Unix ms of the last finished cleanup, None if none ran yet
    last_cleanup: int | None
    #: "dbstat" (pages counted by SQLite's dbstat table) or "estimate" (average row size × rows)
    size_method: str = "dbstat"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "last_cleanup_text": format_ms(self.last_cleanup)}


def size_warning_threshold(environ: dict[str, str] | None = None) -> int:
    """`KESTRA_TRIO_SIZE_WARNING_BYTES` (default 1 GB = 1024**3 bytes).

    Raises:
        ConfigError: the value is not a whole number of bytes >= 1.
    """
    env = os.environ if environ is None else environ
    raw = env.get(SIZE_WARNING_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_SIZE_WARNING_BYTES
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(
            f"{SIZE_WARNING_ENV} must be a whole number of bytes (e.g. 1073741824), got {raw!r}"
        ) from None
    if value < 1:
        raise ConfigError(f"{SIZE_WARNING_ENV} must be at least 1 byte, got {value}")
    return value


def suggested_retention(current_days: int, size: int, threshold: int) -> int:
    """Fewer days, in proportion, so that the table would fit under `threshold` again."""
    if size <= 0:
        return current_days
    return max(1, min(current_days - 1, math.floor(current_days * threshold / size)))


def size_warnings(
    stats: DbStats, threshold_bytes: int | None = None, *, retention_days: int | None = None
) -> list[str]:
    """One line per table whose approximate size is over `threshold_bytes` (empty if none).

    Args:
        stats: from `purge.table_stats`.
        threshold_bytes: default `KESTRA_TRIO_SIZE_WARNING_BYTES` (1 GB).
        retention_days: the period in force, to suggest a shorter one; default
            `KESTRA_TRIO_LOG_RETENTION_DAYS` (30 if unset or invalid).

    Raises:
        ConfigError: `threshold_bytes` is None and `KESTRA_TRIO_SIZE_WARNING_BYTES` is invalid.
    """
    if threshold_bytes is None:
        threshold_bytes = size_warning_threshold()
    if retention_days is None:
        try:
            retention_days = configured_retention_days()
        except ConfigError:
            retention_days = DEFAULT_RETENTION_DAYS
    warnings = []
    for table, size in ((LOGS_TABLE, stats.logs_bytes), (AUDIT_TABLE, stats.audit_bytes)):
        if size <= threshold_bytes:
            continue
        head = f"{table} is {format_bytes(size)} (over {format_bytes(threshold_bytes)})"
        if retention_days <= 1:
            warnings.append(
                f"{head}: retention is already 1 day ({RETENTION_ENV}=1); "
                "move the database (--db) or make workflows log less"
            )
        else:
            days = suggested_retention(retention_days, size, threshold_bytes)
            warnings.append(f"{head}: consider a shorter retention ({RETENTION_ENV}={days})")
    return warnings
