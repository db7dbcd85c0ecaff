"""LogFollow: every entry once, in commit order, ending only after the terminal state's last
line; resumable after an id; ends when the engine is known to be gone."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import pytest
import trio

from factories import T0, ExecutionFactory, task
from kestra_trio.query.logs import LogFollow
from kestra_trio.storage.db import Database, open_database
from kestra_trio.storage.logs import LogFilter


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_database(tmp_path / "k.db") as database:
        yield database


async def test_follow_sees_every_entry_once_and_ends_after_the_last(db: Database) -> None:
    ex = ExecutionFactory(db, "ex-1")
    await ex.create([task("a")])
    await ex.start()
    await ex.logs([(0, "INFO", None, "before the follow")])
    follow = LogFollow(db, LogFilter("ex-1"), poll_seconds=0.01, page_size=7)
    seen: list[str] = []

    async def writer() -> None:
        for round_ in range(5):
            # some rows carry an OLDER timestamp than rows already written: commit order wins
            await ex.logs([(1000 - round_ * 100 + i, "INFO", "a", f"r{round_} l{i}") for i in range(9)])
            await trio.sleep(0.02)
        await ex.logs([(5000, "INFO", None, "last line")])
        await ex.finish("SUCCESS", at=6000)  # lines first, then the terminal state (as the engine does)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        async with aclosing(follow.batches()) as batches:
            async for page in batches:
                seen.extend(row[5] for row in page)
    expected = ["before the follow", *(f"r{r} l{i}" for r in range(5) for i in range(9)), "last line"]
    assert seen == expected
    assert (follow.end_state, follow.lost_engine_pid) == ("SUCCESS", None)


async def test_follow_resumes_after_an_id_and_filters(db: Database) -> None:
    ex = ExecutionFactory(db, "ex-1")
    await ex.create([task("a"), task("b")])
    await ex.start()
    await ex.logs([(i, "INFO", "a" if i % 2 else "b", f"line {i}") for i in range(6)])
    await ex.finish("SUCCESS", at=100)
    follow = LogFollow(db, LogFilter("ex-1"))
    rows = [row async for page in follow.batches() for row in page]
    resumed = LogFollow(db, LogFilter("ex-1", task_id="a"), after_id=rows[2][0])  # as SSE's Last-Event-ID
    assert [row[5] async for page in resumed.batches() for row in page] == ["line 3", "line 5"]


async def test_a_quiet_follow_yields_idle_batches_and_ends_when_the_engine_is_gone(db: Database) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid no longer exists (reaped)
    ex = ExecutionFactory(db, "ex-1")
    await ex.create([task("a")], engine_pid=dead.pid, engine_host=socket.gethostname())
    await ex.start()
    await ex.logs([(0, "INFO", "a", "only line")])
    follow = LogFollow(db, LogFilter("ex-1"), poll_seconds=0.01, engine_check_seconds=0.05)
    pages = [page async for page in follow.batches(idle=True)]
    assert [row[5] for page in pages for row in page] == ["only line"]
    assert (follow.end_state, follow.lost_engine_pid) == ("RUNNING", dead.pid)


async def test_follow_of_a_live_engine_keeps_waiting(db: Database) -> None:
    ex = ExecutionFactory(db, "ex-1", t0=T0)
    await ex.create([task("a")], engine_pid=1, engine_host=socket.gethostname())  # pid 1 is always alive
    await ex.start()
    follow = LogFollow(db, LogFilter("ex-1"), poll_seconds=0.001, engine_check_seconds=0.001)
    idle = 0
    async with aclosing(follow.batches(idle=True)) as batches:
        async for page in batches:
            assert page == []
            idle += 1
            if idle == 20:  # engine checks included: still following
                break
    assert follow.end_state is None and follow.lost_engine_pid is None
