"""storage/db.py: the pragmas docs/storage.md promises, and how a busy database is retried."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio
import trio.testing

from kestra_trio.storage.db import BUSY_TIMEOUT_MS, open_database


async def test_every_connection_gets_the_documented_pragmas(tmp_path: Path) -> None:
    async with open_database(tmp_path / "k.db") as db:
        def pragmas(raw: sqlite3.Connection) -> dict[str, object]:
            names = ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
            return {name: raw.execute(f"PRAGMA {name}").fetchone()[0] for name in names}

        assert await db.run(pragmas) == {"journal_mode": "wal", "busy_timeout": 15_000, "synchronous": 1, "foreign_keys": 1}
    assert BUSY_TIMEOUT_MS == 15_000  # synchronous 1 is NORMAL


def _busy_then_ok(failures: int, calls: list[int]):
    def write(raw: sqlite3.Connection) -> str:
        calls.append(1)
        raw.execute("CREATE TABLE IF NOT EXISTS t (x)")
        raw.execute("INSERT INTO t VALUES (?)", (len(calls),))
        if len(calls) <= failures:
            raise sqlite3.OperationalError("database is locked")  # what SQLite says when it will not wait
        return "written"

    return write


async def test_a_busy_write_is_retried_with_backoff_and_rolled_back_each_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    calls: list[int] = []
    async with open_database(tmp_path / "k.db") as db:
        start = trio.current_time()
        assert await db.write(_busy_then_ok(3, calls)) == "written"
        assert trio.current_time() - start == pytest.approx(0.05 + 0.1 + 0.2)  # 50 ms, doubling
        assert len(calls) == 4
        assert await db.run(lambda raw: raw.execute("SELECT x FROM t").fetchall()) == [(4,)]  # the failed three rolled back


async def test_a_write_that_stays_busy_fails_after_twenty_tries(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    calls: list[int] = []
    async with open_database(tmp_path / "k.db") as db:
        start = trio.current_time()
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await db.write(_busy_then_ok(1000, calls))
        assert len(calls) == 20
        assert trio.current_time() - start == pytest.approx(0.05 + 0.1 + 0.2 + 0.4 + 0.8 + 14 * 1.0)  # capped at 1 s


async def test_another_error_is_not_retried(tmp_path: Path) -> None:
    calls: list[int] = []

    def broken(raw: sqlite3.Connection) -> None:
        calls.append(1)
        raise sqlite3.OperationalError("no such table: nowhere")

    async with open_database(tmp_path / "k.db") as db:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await db.write(broken)
    assert len(calls) == 1
