"""Size monitoring: table_stats numbers are sane, and a small threshold triggers the warning."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kestra_trio.errors import ConfigError
from kestra_trio.retention.policy import (
    DEFAULT_SIZE_WARNING_BYTES,
    DbStats,
    format_bytes,
    size_warning_threshold,
    size_warnings,
    suggested_retention,
)
from kestra_trio.retention.purge import cleanup, table_stats
from kestra_trio.storage.db import Database, open_database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_database(tmp_path / "k.db") as database:
        yield database


async def fill(db: Database, logs: int = 3000, audit: int = 500) -> None:
    def write(raw: sqlite3.Connection) -> None:
        raw.execute(
            "INSERT INTO executions (id, workflow_id, state, created_at, updated_at) VALUES ('ex-1', 'wf', 'SUCCESS', 0, 0)"
        )
        raw.executemany(
            "INSERT INTO execution_logs (execution_id, task_id, timestamp, level, source, message, metadata) "
            "VALUES ('ex-1', 'a', ?, 'INFO', 'plugin:core/shell.run', ?, '{\"stream\":\"stdout\"}')",
            [(i, f"line {i} " + "x" * 200) for i in range(logs)],
        )
        raw.executemany(
            "INSERT INTO execution_audit_events (execution_id, event_type, timestamp, metadata) "
            "VALUES ('ex-1', 'STATE_CHANGE', ?, '{\"from_state\":\"PENDING\",\"to_state\":\"RUNNING\"}')",
            [(i,) for i in range(audit)],
        )

    await db.write(write)


def stats(logs_bytes: int, audit_bytes: int = 0) -> DbStats:
    return DbStats(10, 10, logs_bytes, audit_bytes, logs_bytes + audit_bytes, 0, None)


async def test_stats_are_sane(db: Database) -> None:
    await fill(db)
    result = await table_stats(db)
    assert (result.logs_rows, result.audit_rows, result.last_cleanup) == (3000, 500, None)
    assert result.size_method == "dbstat"  # CPython's bundled SQLite has it
    # at least the message bytes, and no more than the file plus its WAL
    assert 3000 * 200 < result.logs_bytes <= result.file_bytes + result.wal_bytes
    assert 500 * 40 < result.audit_bytes < result.logs_bytes
    assert result.file_bytes > 0


async def test_estimate_is_close_to_dbstat(db: Database) -> None:
    await fill(db)
    exact = await table_stats(db, use_dbstat=True)
    estimate = await table_stats(db, use_dbstat=False)
    assert estimate.size_method == "estimate"
    assert (estimate.logs_rows, estimate.audit_rows) == (exact.logs_rows, exact.audit_rows)
    assert 0.5 < estimate.logs_bytes / exact.logs_bytes < 2
    assert 0.25 < estimate.audit_bytes / exact.audit_bytes < 4


async def test_empty_database(db: Database) -> None:
    for use_dbstat in (True, False):
        result = await table_stats(db, use_dbstat=use_dbstat)
        assert (result.logs_rows, result.audit_rows) == (0, 0)
        assert result.logs_bytes < 64 * 1024  # a page or a few: the empty b-trees
    assert (await table_stats(db, use_dbstat=False)).logs_bytes == 0


async def test_in_memory_database() -> None:
    async with open_database(None) as db:
        result = await table_stats(db)
    assert result.file_bytes > 0 and result.wal_bytes == 0


async def test_last_cleanup_is_reported(db: Database) -> None:
    await cleanup(db, retention_days=30, now_ms=1_800_000_000_000)
    assert (await table_stats(db)).last_cleanup == 1_800_000_000_000


async def test_small_threshold_warns(db: Database) -> None:
    await fill(db)
    result = await table_stats(db)
    warnings = size_warnings(result, 100 * 1024, retention_days=30)
    assert len(warnings) == 1
    assert warnings[0].startswith("execution_logs is ")
    assert "(over 100.0 KB): consider a shorter retention (KESTRA_TRIO_LOG_RETENTION_DAYS=" in warnings[0]
    assert size_warnings(result, 1) and len(size_warnings(result, 1)) == 2
    assert size_warnings(result, DEFAULT_SIZE_WARNING_BYTES) == []


def test_warning_text() -> None:
    gib = 1024**3
    assert size_warnings(stats(int(1.2 * gib)), gib) == [
        "execution_logs is 1.2 GB (over 1.0 GB): consider a shorter retention (KESTRA_TRIO_LOG_RETENTION_DAYS=25)"
    ]
    assert size_warnings(stats(gib), gib) == []  # "over" means strictly above
    assert size_warnings(stats(0, 3 * gib), gib, retention_days=7) == [
        "execution_audit_events is 3.0 GB (over 1.0 GB): consider a shorter retention (KESTRA_TRIO_LOG_RETENTION_DAYS=2)"
    ]
    [line] = size_warnings(stats(2 * gib), gib, retention_days=1)
    assert "retention is already 1 day" in line


def test_suggested_retention() -> None:
    assert suggested_retention(30, 2000, 1000) == 15
    assert suggested_retention(30, 1001, 1000) == 29  # always at least one day shorter
    assert suggested_retention(2, 10**9, 1) == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 1024**3), ("", 1024**3), ("4096", 4096), (" 1_000 ", 1000)],
)
def test_threshold_from_environment(value: str | None, expected: int) -> None:
    env = {} if value is None else {"KESTRA_TRIO_SIZE_WARNING_BYTES": value}
    assert size_warning_threshold(env) == expected


@pytest.mark.parametrize("value", ["abc", "1GB", "0", "-5", "1.5"])
def test_invalid_threshold_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="KESTRA_TRIO_SIZE_WARNING_BYTES must be"):
        size_warning_threshold({"KESTRA_TRIO_SIZE_WARNING_BYTES": value})


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1024, 1536, 5 * 1024**2, int(1.2 * 1024**3), 3 * 1024**4)] == [
        "0 B", "1023 B", "1.0 KB", "1.5 KB", "5.0 MB", "1.2 GB", "3.0 TB",
    ]  # fmt: skip


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KESTRA_TRIO_SIZE_WARNING_BYTES", "1000")
    monkeypatch.setenv("KESTRA_TRIO_LOG_RETENTION_DAYS", "10")
    assert size_warnings(stats(2000)) == [
        "execution_logs is 2.0 KB (over 1000 B): consider a shorter retention (KESTRA_TRIO_LOG_RETENTION_DAYS=5)"
    ]
    monkeypatch.setenv("KESTRA_TRIO_LOG_RETENTION_DAYS", "abc")  # the run reports that one itself
    assert size_warnings(stats(2000)) == [
        "execution_logs is 2.0 KB (over 1000 B): consider a shorter retention (KESTRA_TRIO_LOG_RETENTION_DAYS=15)"
    ]
    monkeypatch.setenv("KESTRA_TRIO_SIZE_WARNING_BYTES", "abc")
    with pytest.raises(ConfigError):
        size_warnings(stats(2000))
