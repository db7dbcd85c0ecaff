"""Retention cleanup: batches of 1,000, recent rows kept, counts adjusted, dry run, the 24 h service."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from kestra_trio.errors import StorageError
from kestra_trio.observability.records import LogEntry, LogLevel
from kestra_trio.retention import purge
from kestra_trio.retention.policy import DAY_MS, CleanupReport, batch_count, cutoff_ms, is_expired
from kestra_trio.retention.purge import cleanup, run_retention_service
from kestra_trio.storage.db import Database, open_database
from kestra_trio.storage.logs import LogStore

NOW = 1_800_000_000_000
OLD = NOW - 31 * DAY_MS
RECENT = NOW - 29 * DAY_MS


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_database(tmp_path / "k.db") as database:
        yield database


async def seed(db: Database, *, old_logs: int, recent_logs: int, old_audit: int, recent_audit: int) -> None:
    """Two executions; logs alternate between them, so both counts must be adjusted."""

    def write(raw: sqlite3.Connection) -> None:
        raw.executemany(
            "INSERT INTO executions (id, workflow_id, state, created_at, updated_at) VALUES (?, 'wf', 'SUCCESS', ?, ?)",
            [("ex-1", OLD, OLD), ("ex-2", OLD, OLD)],
        )

    await db.write(write)
    logs = [
        LogEntry(f"ex-{1 + i % 2}", "a", LogLevel.INFO, "worker", f"old {i}", {}, OLD + i) for i in range(old_logs)
    ] + [LogEntry("ex-1", "a", LogLevel.INFO, "worker", f"new {i}", {}, RECENT + i) for i in range(recent_logs)]
    await LogStore(db).insert_batch(logs)

    def audit(raw: sqlite3.Connection) -> None:
        raw.executemany(
            "INSERT INTO execution_audit_events (execution_id, event_type, timestamp, metadata) VALUES (?, ?, ?, '{}')",
            [("ex-1", "STATE_CHANGE", OLD + i) for i in range(old_audit)]
            + [("ex-1", "STATE_CHANGE", RECENT + i) for i in range(recent_audit)],
        )

    await db.write(audit)


def snapshot(raw: sqlite3.Connection) -> dict[str, object]:
    return {
        "logs": raw.execute("SELECT COUNT(*) FROM execution_logs").fetchone()[0],
        "old_logs": raw.execute("SELECT COUNT(*) FROM execution_logs WHERE timestamp < ?", (NOW - 30 * DAY_MS,)).fetchone()[0],
        "audit": raw.execute("SELECT COUNT(*) FROM execution_audit_events").fetchone()[0],
        "counts": dict(raw.execute("SELECT id, log_entry_count FROM executions ORDER BY id").fetchall()),
        "actual": dict(raw.execute("SELECT execution_id, COUNT(*) FROM execution_logs GROUP BY execution_id").fetchall()),
        "state": raw.execute("SELECT audit_cutoff, last_cleanup FROM retention_state").fetchone(),
    }


def test_policy_cutoff() -> None:
    assert cutoff_ms(NOW, 30) == NOW - 30 * DAY_MS
    assert is_expired(OLD, cutoff_ms(NOW, 30)) and not is_expired(RECENT, cutoff_ms(NOW, 30))
    assert not is_expired(cutoff_ms(NOW, 30), cutoff_ms(NOW, 30))  # exactly 30 days old is kept
    assert [batch_count(n) for n in (0, 1, 1000, 1001, 2500)] == [0, 1, 1, 2, 3]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="retention_days"):
            cutoff_ms(NOW, bad)  # type: ignore[arg-type]


async def test_deletes_old_rows_in_batches_of_1000(db: Database) -> None:
    await seed(db, old_logs=2500, recent_logs=30, old_audit=1500, recent_audit=7)
    batches: list[tuple[str, int]] = []
    report = await cleanup(db, retention_days=30, now_ms=NOW, on_batch=lambda table, n: batches.append((table, n)))
    assert batches == [
        ("execution_logs", 1000), ("execution_logs", 1000), ("execution_logs", 500),
        ("execution_audit_events", 1000), ("execution_audit_events", 500),
    ]  # fmt: skip
    assert report == CleanupReport(2500, 1500, NOW - 30 * DAY_MS, False, batches=5, retention_days=30)
    after = await db.run(snapshot)
    assert (after["logs"], after["old_logs"], after["audit"]) == (30, 0, 7)
    assert after["counts"] == {"ex-1": 30, "ex-2": 0} == {"ex-2": 0, **after["actual"]}  # type: ignore[dict-item]
    assert after["state"] == (0, NOW)  # the trigger is closed again; last cleanup recorded


async def test_each_batch_is_its_own_transaction(db: Database) -> None:
    await seed(db, old_logs=2000, recent_logs=0, old_audit=0, recent_audit=0)
    statements: list[str] = []
    await db.run(lambda raw: raw.set_trace_callback(statements.append))
    try:
        report = await cleanup(db, retention_days=30, now_ms=NOW)
    finally:
        await db.run(lambda raw: raw.set_trace_callback(None))
    deletes_per_txn, current = [], 0
    for statement in statements:
        if statement.startswith("DELETE FROM execution_logs"):
            current += 1
        elif statement == "COMMIT":
            deletes_per_txn.append(current)
            current = 0
    # 2 full batches, an empty probe for logs, one for audit, and the last_cleanup write
    assert deletes_per_txn == [1000, 1000, 0, 0, 0]
    assert report.batches == 2


async def test_recent_rows_are_kept(db: Database) -> None:
    await seed(db, old_logs=0, recent_logs=40, old_audit=0, recent_audit=4)
    report = await cleanup(db, retention_days=30, now_ms=NOW)
    assert (report.logs_deleted, report.audit_deleted, report.batches) == (0, 0, 0)
    after = await db.run(snapshot)
    assert (after["logs"], after["audit"], after["counts"]) == (40, 4, {"ex-1": 40, "ex-2": 0})
    # a shorter retention does expire them
    report = await cleanup(db, retention_days=1, now_ms=NOW)
    assert (report.logs_deleted, report.audit_deleted) == (40, 4)


async def test_dry_run_counts_and_deletes_nothing(db: Database) -> None:
    await seed(db, old_logs=1200, recent_logs=3, old_audit=10, recent_audit=2)
    before = await db.run(snapshot)
    report = await cleanup(db, retention_days=30, now_ms=NOW, dry_run=True)
    assert (report.logs_deleted, report.audit_deleted, report.batches, report.dry_run) == (1200, 10, 3, True)
    assert await db.run(snapshot) == before
    assert before["state"] == (0, None)


async def test_small_batch_size(db: Database) -> None:
    await seed(db, old_logs=25, recent_logs=0, old_audit=0, recent_audit=0)
    sizes: list[int] = []
    report = await cleanup(db, retention_days=30, now_ms=NOW, batch_size=10, on_batch=lambda _, n: sizes.append(n))
    assert sizes == [10, 10, 5] and report.batches == 3
    with pytest.raises(ValueError, match="batch_size"):
        await cleanup(db, retention_days=30, batch_size=0)


async def test_other_writers_get_in_between_batches(db: Database) -> None:
    await seed(db, old_logs=6000, recent_logs=0, old_audit=0, recent_audit=0)
    events: list[str] = []
    store = LogStore(db)

    async def writer() -> None:
        for i in range(5):
            await store.insert_batch([LogEntry("ex-1", None, LogLevel.INFO, "worker", f"live {i}", {}, NOW)])
            events.append("insert")
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(cleanup, db, retention_days=30, now_ms=NOW, on_batch=lambda *_: events.append("batch")))
        nursery.start_soon(writer)
    assert events.count("batch") == 6 and events.count("insert") == 5
    assert events.index("insert") < len(events) - 1 - events[::-1].index("batch")  # an insert before the last batch
    after = await db.run(snapshot)
    assert after["logs"] == 5 and after["counts"] == {"ex-1": 5, "ex-2": 0}


async def test_service_runs_at_start_then_every_interval(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    calls: list[float] = []
    reports: list[CleanupReport] = []

    async def fake_cleanup(db: object, *, retention_days: int) -> CleanupReport:
        calls.append(trio.current_time())
        await trio.sleep(5)  # a cleanup takes a while; the next interval starts after it
        return CleanupReport(1, 0, 0, False, 1, retention_days)

    monkeypatch.setattr(purge, "cleanup", fake_cleanup)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(run_retention_service, object(), retention_days=7, interval=3600, on_report=reports.append))
        await trio.sleep(3 * 3605 + 1)
        nursery.cancel_scope.cancel()
    assert [round(t - start) for t in calls] == [0, 3605, 7210, 10815]
    assert len(reports) == 3 and reports[0].retention_days == 7


async def test_service_survives_a_failed_cleanup(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    async def flaky_cleanup(db: object, *, retention_days: int) -> CleanupReport:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StorageError("database is locked by another process; try again")
        return CleanupReport(0, 0, 0, False, 0, retention_days)

    monkeypatch.setattr(purge, "cleanup", flaky_cleanup)
    with caplog.at_level(logging.WARNING, logger="kestra_trio.retention"):
        with trio.move_on_after(24 * 3600 * 2 + 1):
            await run_retention_service(object(), retention_days=30)  # type: ignore[arg-type]
    assert calls == 3
    assert "retention cleanup failed (tried again every 86400 s while this process runs): database is locked" in caplog.text


async def test_service_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="retention_days"):
        await run_retention_service(object(), retention_days=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="interval"):
        await run_retention_service(object(), retention_days=30, interval=0)  # type: ignore[arg-type]


async def test_service_on_a_real_database(db: Database) -> None:
    await seed(db, old_logs=0, recent_logs=0, old_audit=0, recent_audit=0)

    def insert_old(raw: sqlite3.Connection) -> None:
        old = NOW - 400 * DAY_MS  # older than any retention, whatever the wall clock says
        raw.execute(
            "INSERT INTO execution_logs (execution_id, timestamp, level, source, message) "
            "VALUES ('ex-1', ?, 'INFO', 'worker', 'old')",
            (old,),
        )

    await db.write(insert_old)
    done = trio.Event()
    reports: list[CleanupReport] = []

    def on_report(report: CleanupReport) -> None:
        reports.append(report)
        done.set()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(run_retention_service, db, retention_days=30, on_report=on_report))
            await done.wait()
            nursery.cancel_scope.cancel()
    assert reports[0].logs_deleted == 1
    assert (await db.run(snapshot))["logs"] == 0


async def test_cancel_between_batches_leaves_a_consistent_database(db: Database) -> None:
    await seed(db, old_logs=3000, recent_logs=0, old_audit=0, recent_audit=0)
    with trio.CancelScope() as scope:
        await cleanup(db, retention_days=30, now_ms=NOW, on_batch=lambda *_: scope.cancel())
    assert scope.cancelled_caught
    after = await db.run(snapshot)
    assert after["logs"] == 2000  # the first batch committed whole, nothing after it
    assert after["counts"] == {"ex-2": 0, **after["actual"]}  # type: ignore[dict-item]
    assert after["state"] == (0, None)  # an interrupted cleanup is not recorded as done
