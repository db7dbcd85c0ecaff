"""query/: opaque keyset cursors, execution pages (newest first) and log pages, every row once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from factories import T0, ExecutionFactory, task
from kestra_trio.query.cursors import InvalidCursor, decode_cursor, encode_cursor
from kestra_trio.query.executions import ExecutionFilter, InvalidState, list_executions
from kestra_trio.query.logs import log_page, log_pages
from kestra_trio.storage.db import Database, open_database
from kestra_trio.storage.logs import LogFilter


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_database(tmp_path / "k.db") as database:
        yield database


def test_a_cursor_round_trips_and_a_forged_one_is_refused() -> None:
    cursor = encode_cursor(T0, "ex-1")
    assert decode_cursor(cursor, int, str) == (T0, "ex-1")
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor  # URL-safe as is
    for forged in ("", "not base64!", encode_cursor("x", "ex-1"), encode_cursor(T0), encode_cursor(T0, "a", 1), "e30"):
        with pytest.raises(InvalidCursor, match="start again without it"):
            decode_cursor(forged, int, str)


def _raw_cursor(json_text: str) -> str:
    """A cursor holding exactly this JSON text (what a client could forge)."""
    import base64

    return base64.urlsafe_b64encode(json_text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("json_text", "types", "expected"),
    [
        ("[0,0]", (int, int), (0, 0)),
        ("[9223372036854775807,1]", (int, int), (2**63 - 1, 1)),
        ('[1,"ex-\\u00e9"]', (int, str), (1, "ex-\u00e9")),
        ("[99999999999999999999999,1]", (int, int), None),  # past SQLite's int64: OverflowError when bound
        ("[1,99999999999999999999999]", (int, int), None),
        ("[9223372036854775808,1]", (int, int), None),
        ("[-1,1]", (int, int), None),  # ids and epoch milliseconds are never negative
        ("[1,-99999999999999999999999]", (int, int), None),
        ('[99999999999999999999999,"a"]', (int, str), None),
        ('[-99999999999999999999999,"a"]', (int, str), None),
        ('[1,"\\ud800"]', (int, str), None),  # a lone surrogate: not UTF-8, UnicodeEncodeError when bound
        ("[1e400,1]", (int, int), None),
        ("[NaN,1]", (int, int), None),
        ("[true,1]", (int, int), None),
        ("[1.0,1]", (int, int), None),
        ("[" + "9" * 5000 + ",1]", (int, int), None),  # past int()'s digit limit
    ],
)
def test_decode_cursor_takes_only_keys_sqlite_can_bind(json_text: str, types: tuple, expected: tuple | None) -> None:
    cursor = _raw_cursor(json_text)
    if expected is not None:
        assert decode_cursor(cursor, *types) == expected
    else:
        with pytest.raises(InvalidCursor, match="start again without it"):
            decode_cursor(cursor, *types)


async def test_execution_pages_walk_every_row_once_newest_first(db: Database) -> None:
    # equal creation times too: the id breaks the tie, so no row is skipped or repeated
    for index in range(7):
        ex = ExecutionFactory(db, f"ex-{index}", workflow_id="wf" if index % 2 else "other")
        await ex.create([task("a")], created_at=T0 + index // 2)
    seen, cursor = [], None
    while True:
        page = await list_executions(db, limit=3, cursor=cursor)
        seen.extend(row.id for row in page.rows)
        assert set(page.task_counts) == {row.id for row in page.rows}
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["ex-6", "ex-5", "ex-4", "ex-3", "ex-2", "ex-1", "ex-0"]
    filtered = await list_executions(db, ExecutionFilter(workflow_id="wf", state="PENDING"), limit=10)
    assert [row.id for row in filtered.rows] == ["ex-5", "ex-3", "ex-1"] and filtered.next_cursor is None
    with pytest.raises(InvalidCursor):
        await list_executions(db, cursor="garbage")


def test_state_filter_takes_any_case_and_names_every_state() -> None:
    assert ExecutionFilter.parse_state(" queued ") == "QUEUED"
    with pytest.raises(InvalidState, match="^Invalid state. Must be one of: QUEUED, PENDING, WAITING, RUNNING, SUCCESS"):
        ExecutionFilter.parse_state("DONE")


async def test_log_pages_and_cursor_pages_agree(db: Database) -> None:
    ex = ExecutionFactory(db, "ex-1")
    await ex.create([task("a")])
    await ex.logs([(i // 3, "INFO", "a", f"line {i}") for i in range(10)])  # equal timestamps by threes
    where = LogFilter("ex-1")
    every = [row async for page in log_pages(db, where, page_size=4) for row in page]
    assert [row[5] for row in every] == [f"line {i}" for i in range(10)]
    paged, cursor = [], None
    while True:
        page = await log_page(db, where, limit=4, cursor=cursor)
        paged.extend(page.rows)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert paged == every
