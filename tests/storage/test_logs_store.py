"""LogStore: one transaction per batch, exact log_entry_count, keyset paging without dup or skip."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kestra_trio.observability.records import LogEntry, LogLevel
from kestra_trio.storage.db import Database, open_database
from kestra_trio.storage.logs import LogFilter, LogStore


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_database(tmp_path / "k.db") as database:

        def executions(raw: sqlite3.Connection) -> None:
            raw.executemany(
                "INSERT INTO executions (id, workflow_id, state, created_at, updated_at) VALUES (?, 'wf', 'RUNNING', 0, 0)",
                [("ex-1",), ("ex-2",)],
            )

        await database.write(executions)
        yield database


def entry(i: int, *, execution_id: str = "ex-1", timestamp: int | None = None, task_id: str | None = "a") -> LogEntry:
    return LogEntry(
        execution_id=execution_id,
        task_id=task_id,
        level=LogLevel.INFO if i % 3 else LogLevel.ERROR,
        source="plugin:core/shell.run",
        message=f"line {i}",
        metadata={"stream": "stdout"} if i % 2 else {},
        timestamp=1000 + i if timestamp is None else timestamp,
    )


def log_counts(raw: sqlite3.Connection) -> dict[str, int]:
    return dict(raw.execute("SELECT id, log_entry_count FROM executions").fetchall())


async def test_insert_batch_is_one_transaction(db: Database) -> None:
    statements: list[str] = []
    await db.run(lambda raw: raw.set_trace_callback(statements.append))
    try:
        await LogStore(db).insert_batch([entry(i) for i in range(50)] + [entry(0, execution_id="ex-2")])
    finally:
        await db.run(lambda raw: raw.set_trace_callback(None))
    assert [s for s in statements if s.split()[0] in ("BEGIN", "COMMIT", "ROLLBACK")] == ["BEGIN IMMEDIATE", "COMMIT"]


async def test_failed_batch_writes_nothing(db: Database) -> None:
    store = LogStore(db)
    bad = entry(1)
    bad.message = None  # type: ignore[assignment]  # NOT NULL violation on the last row
    with pytest.raises(sqlite3.IntegrityError):
        await store.insert_batch([entry(0), bad])
    assert await store.count(LogFilter("ex-1")) == 0
    assert await db.run(log_counts) == {"ex-1": 0, "ex-2": 0}


async def test_log_entry_count_is_exact(db: Database) -> None:
    store = LogStore(db)
    await store.insert_batch([entry(i) for i in range(7)] + [entry(i, execution_id="ex-2") for i in range(3)])
    await store.insert_batch([entry(i) for i in range(5)])
    assert await db.run(log_counts) == {"ex-1": 12, "ex-2": 3}
    assert await store.count(LogFilter("ex-1")) == 12
    assert await store.count(LogFilter("ex-2")) == 3


async def test_rows_read_back_as_written(db: Database) -> None:
    store = LogStore(db)
    await store.insert_batch([entry(1), entry(2, task_id=None)])
    rows = await store.page_by_id(LogFilter("ex-1"))
    assert [(r.task_id, r.level, r.message, r.metadata) for r in rows] == [
        ("a", "INFO", "line 1", {"stream": "stdout"}),
        (None, "INFO", "line 2", None),
    ]


async def test_page_by_time_with_equal_timestamps_has_no_dup_or_skip(db: Database) -> None:
    store = LogStore(db)
    # out-of-order and heavily tied timestamps: 4 distinct values for 53 rows
    await store.insert_batch([entry(i, timestamp=5000 + (i * 7) % 4) for i in range(53)])
    seen: list[tuple[int, int]] = []
    after = None
    while True:
        page = await store.page_by_time(LogFilter("ex-1"), after, limit=5)
        if not page:
            break
        seen.extend((r.timestamp, r.id) for r in page)
        after = (page[-1].timestamp, page[-1].id)
    assert len(seen) == 53
    assert seen == sorted(set(seen))


async def test_page_by_id_follows_new_rows(db: Database) -> None:
    store = LogStore(db)
    await store.insert_batch([entry(i, timestamp=9000) for i in range(12)])
    cursor, seen = 0, []
    for _ in range(3):
        page = await store.page_by_id(LogFilter("ex-1"), cursor, limit=5)
        seen += [r.id for r in page]
        cursor = page[-1].id if page else cursor
    await store.insert_batch([entry(i, timestamp=1) for i in range(4)])  # late rows, older timestamps
    page = await store.page_by_id(LogFilter("ex-1"), cursor, limit=100)
    seen += [r.id for r in page]
    assert len(seen) == 16 and seen == sorted(set(seen))


async def test_filters_and_tail(db: Database) -> None:
    store = LogStore(db)
    await store.insert_batch([entry(i) for i in range(10)] + [entry(i, task_id="b") for i in range(10, 14)])
    errors = await store.page_by_id(LogFilter("ex-1", levels=("ERROR",)))
    assert [r.message for r in errors] == ["line 0", "line 3", "line 6", "line 9", "line 12"]
    since = await store.count(LogFilter("ex-1", since_ms=1010))
    assert since == 4
    assert [r.message for r in await store.tail("ex-1", "a", limit=2)] == ["line 8", "line 9"]
    assert await store.count(LogFilter("ex-1", task_id="b", source_prefix="plugin:core/")) == 4


async def test_collector_stores_an_entry_with_a_lone_surrogate_replaced_instead_of_retrying_forever(db: Database) -> None:
    import trio

    from kestra_trio.observability.collector import LogCollector

    errors: list[str] = []
    collector = LogCollector(LogStore(db), linger=None, on_error=errors.append)
    good, bad = entry(1), entry(2)
    bad.message = "half \ud800 a pair"
    bad.metadata = {"k\udc80": "v\udfff"}
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(collector.run)
            with collector.sender() as send:
                await send.send([good, bad, entry(3)])
            collector.close()
    rows = await db.run(lambda raw: raw.execute("SELECT message, metadata FROM execution_logs ORDER BY id").fetchall())
    assert rows == [("line 1", '{"stream":"stdout"}'), ("half \ufffd a pair", '{"k\ufffd":"v\ufffd"}'), ("line 3", '{"stream":"stdout"}')]
    assert errors == []  # a data problem, not a database outage
    assert await db.run(log_counts) == {"ex-1": 3, "ex-2": 0}


async def test_a_page_with_since_costs_the_same_deep_in_the_log(db: Database) -> None:
    """`--since` must not make SQLite rescan from the since bound on every page (quadratic)."""
    from kestra_trio.storage.reads import log_page_by_time

    store = LogStore(db)
    await store.insert_batch([entry(i, timestamp=1000 + i) for i in range(20_000)])
    f = LogFilter("ex-1", since_ms=1000)

    def steps_for_page(raw: sqlite3.Connection, after: tuple[int, int] | None) -> int:
        counter = [0]

        def tick() -> int:
            counter[0] += 1
            return 0

        raw.set_progress_handler(tick, 100)  # called every 100 virtual-machine steps
        try:
            assert len(log_page_by_time(raw, f, after, 100)) == 100
        finally:
            raw.set_progress_handler(None, 0)
        return counter[0]

    first = await db.run(steps_for_page, None)
    [(ts, row_id)] = await db.run(lambda raw: raw.execute("SELECT timestamp, id FROM execution_logs WHERE timestamp = 19000").fetchall())
    deep = await db.run(steps_for_page, (ts, row_id))
    assert deep <= first * 2  # was ~190x: every row from `since` to the cursor was visited again


async def test_record_lost_stores_the_gap_and_the_counts_with_the_kept_entries(db: Database) -> None:
    from kestra_trio.observability.records import LostEntries

    lost = [
        LostEntries("ex-1", "a", 1234, 1_700_000_000_123, 1_700_000_005_678, "database or disk is full"),
        LostEntries("ex-1", None, 1, 1_700_000_006_000, 1_700_000_006_000, "disk I/O error"),
        LostEntries("ex-2", "b", 7, 1_700_000_000_000, 1_700_000_001_000, "disk I/O error"),
    ]
    await LogStore(db).record_lost(lost, [entry(1), entry(2)])
    rows = await db.run(lambda raw: raw.execute(
        "SELECT execution_id, task_id, timestamp, level, source, message, metadata FROM execution_logs ORDER BY id"
    ).fetchall())
    assert [r[:5] for r in rows] == [
        ("ex-1", "a", 1_700_000_000_123, "ERROR", "worker"),  # stamped where the gap starts
        ("ex-1", None, 1_700_000_006_000, "ERROR", "scheduler"),
        ("ex-2", "b", 1_700_000_000_000, "ERROR", "worker"),
        ("ex-1", "a", 1001, "INFO", "plugin:core/shell.run"),
        ("ex-1", "a", 1002, "INFO", "plugin:core/shell.run"),
    ]
    assert rows[0][5] == (
        "1,234 log lines of task a (from 2023-11-14T22:13:20.123Z to 2023-11-14T22:13:25.678Z) could not be "
        "written to the database and are lost: database or disk is full [DATABASE_ERROR]"
    )
    assert rows[1][5].startswith("1 log line of the execution (2023-11-14T22:13:26.000Z) could not be written")
    assert '"lost_entries":1234' in rows[0][6] and '"reason_code":"DATABASE_ERROR"' in rows[0][6]
    counts = await db.run(lambda raw: dict(raw.execute("SELECT id, log_entries_lost FROM executions").fetchall()))
    assert counts == {"ex-1": 1235, "ex-2": 7}
    assert await db.run(log_counts) == {"ex-1": 4, "ex-2": 1}  # the ERROR lines are entries too
