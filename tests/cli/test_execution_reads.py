"""storage/reads.py: the log pages behind `execution logs` (keyset by time, cursor by id)."""

from __future__ import annotations

from pathlib import Path

from factories import ExecutionFactory, task
from kestra_trio.storage import reads
from kestra_trio.storage.db import open_database
from kestra_trio.storage.logs import LogFilter


async def _two_executions(db) -> None:
    for name in ("ex-a", "ex-b"):
        ex = ExecutionFactory(db, name)
        await ex.create([task("t")])
    a, b = ExecutionFactory(db, "ex-a"), ExecutionFactory(db, "ex-b")
    # many rows share a timestamp; ex-b's rows are interleaved with ex-a's
    await a.logs([(i // 7, "INFO", "t", f"a{i}") for i in range(25)])
    await b.logs([(0, "INFO", "t", f"b{i}") for i in range(10)])
    await a.logs([(1, "ERROR", "t", "a-late")])  # committed last, older timestamp than a24


async def test_time_pages_cover_every_row_once_in_order(tmp_path: Path) -> None:
    async with open_database(tmp_path / "k.db") as db:
        await _two_executions(db)
        seen, after = [], None
        while True:
            page = await db.run(reads.log_page_by_time, LogFilter("ex-a"), after, 4)
            if not page:
                break
            seen += page
            after = (page[-1][2], page[-1][0])
    keys = [(row[2], row[0]) for row in seen]
    assert keys == sorted(keys) and len(set(keys)) == 26
    assert [row[5] for row in seen][:8] == ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"]
    assert [row[5] for row in seen].index("a-late") == 14  # by timestamp: after a13, the last of t0+1


async def test_follow_cursor_is_commit_order_and_skips_other_rows(tmp_path: Path) -> None:
    async with open_database(tmp_path / "k.db") as db:
        await _two_executions(db)
        start = await db.run(reads.log_start_id, "ex-a")
        assert start == 0
        rows, cursor = await db.read(reads.log_follow_page, LogFilter("ex-a"), start, 1000)
        assert [r[5] for r in rows][-1] == "a-late" and len(rows) == 26
        top = await db.run(lambda raw: raw.execute("SELECT MAX(id) FROM execution_logs").fetchone()[0])
        assert cursor == top
        # a filter that matches nothing still moves the cursor past what was scanned
        rows, cursor = await db.read(reads.log_follow_page, LogFilter("ex-a", levels=("DEBUG",)), 0, 1000)
        assert rows == [] and cursor == top
        # a full page resumes exactly after its last row
        rows, cursor = await db.read(reads.log_follow_page, LogFilter("ex-a"), 0, 5)
        assert len(rows) == 5 and cursor == rows[-1][0]


async def test_query_plans_use_the_indexes(tmp_path: Path) -> None:
    async with open_database(tmp_path / "k.db") as db:
        def plan(raw, sql, params):
            return " ".join(str(r[-1]) for r in raw.execute("EXPLAIN QUERY PLAN " + sql, params))

        by_time = await db.run(
            plan,
            "SELECT id FROM execution_logs INDEXED BY idx_logs_execution WHERE execution_id = ? "
            "AND (timestamp, id) > (?, ?) ORDER BY timestamp, id LIMIT 1000",
            ("x", 0, 0),
        )
        by_id = await db.run(
            plan, "SELECT id FROM execution_logs NOT INDEXED WHERE execution_id = ? AND id > ? ORDER BY id LIMIT 10",
            ("x", 0),
        )
    assert "idx_logs_execution" in by_time and "TEMP B-TREE" not in by_time
    assert "INTEGER PRIMARY KEY" in by_id and "TEMP B-TREE" not in by_id


def test_engine_gone_only_for_a_dead_process_on_this_host() -> None:
    import os
    import socket
    import subprocess
    import sys
    import time

    from kestra_trio.cli.execution import _engine_gone

    here = socket.gethostname()
    assert not _engine_gone(os.getpid(), here)  # alive
    assert not _engine_gone(None, here) and not _engine_gone(0, here) and not _engine_gone(-1, here)
    assert _engine_gone(2**22 + 12345, here)  # above the default pid_max: no such process
    assert not _engine_gone(2**22 + 12345, "elsewhere.invalid")  # another host: cannot know
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        if os.path.exists(f"/proc/{child.pid}/stat"):
            deadline = time.monotonic() + 10
            while not _engine_gone(child.pid, here):  # exited, not reaped yet: a zombie is gone too
                assert time.monotonic() < deadline, "a zombie engine was not seen as gone"
                time.sleep(0.05)
    finally:
        child.wait()
    assert _engine_gone(child.pid, here) or os.path.exists(f"/proc/{child.pid}")  # reaped (unless pid reused)
