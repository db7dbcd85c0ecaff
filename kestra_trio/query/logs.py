"""Log reads: keyset pages in time order, and the follow loop (`logs --follow`, SSE next).

Rows are tuples in `LOG_PAGE_COLUMNS` order (id, task_id, timestamp, level, source,
message, metadata): `execution logs` prints up to a million of them and a dataclass per row
would be most of its cost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import trio

from kestra_trio.query.cursors import decode_cursor, encode_cursor
from kestra_trio.query.liveness import engine_gone
from kestra_trio.storage import reads
from kestra_trio.storage.db import Database
from kestra_trio.storage.executions import ExecutionStore
from kestra_trio.storage.logs import LogFilter
from kestra_trio.storage.reads import LOG_PAGE_COLUMNS as LOG_PAGE_COLUMNS
from kestra_trio.storage.reads import LogTuple
from kestra_trio.storage.rows import TERMINAL_STATES

PAGE_SIZE = 1000
#: how often a follower looks for new entries
POLL_SECONDS = 0.1
#: a quiet follower looks at most this often whether the engine process is still alive
ENGINE_CHECK_SECONDS = 2.0


@dataclass(frozen=True)
class LogPage:
    rows: list[LogTuple]
    #: pass back to get the next page; None on the last page
    next_cursor: str | None = None


async def log_page(db: Database, where: LogFilter, *, limit: int = PAGE_SIZE, cursor: str | None = None) -> LogPage:
    """One page in (timestamp, id) order, strictly after `cursor`.

    Raises:
        InvalidCursor: `cursor` is not one a previous page returned.
    """
    after = decode_cursor(cursor, int, int) if cursor else None
    rows = await db.run(reads.log_page_by_time, where, after, limit)
    next_cursor = encode_cursor(rows[-1][2], rows[-1][0]) if len(rows) == limit else None
    return LogPage(rows, next_cursor)


async def log_pages(db: Database, where: LogFilter, *, page_size: int = PAGE_SIZE) -> AsyncIterator[list[LogTuple]]:
    """Every matching entry, oldest first, one page at a time (each page costs the same,
    however deep into a million-row log it is)."""
    after: tuple[int, int] | None = None
    while True:
        page = await db.run(reads.log_page_by_time, where, after, page_size)
        if page:
            yield page
        if len(page) < page_size:
            return
        after = (page[-1][2], page[-1][0])


class LogFollow:
    """Follow an execution's log: every entry once, in commit (id) order, until it ends.

    `batches()` yields lists of rows; with `idle=True` it also yields an empty list after a
    poll that found nothing (a reader can check its own client is still there, an SSE stream
    can send a keep-alive). It ends only after a read that *follows* the observation of the
    execution's terminal state — the engine commits every line before the terminal state, so
    that read saw the last one — or once the engine is known to be gone (its host is ours
    and its pid no longer exists): nothing more can be committed then, one last read takes
    the rest. Afterwards `end_state` is the state it ended in (None: the execution was
    deleted) and `lost_engine_pid` the pid of a lost engine (None when it finished).

    `after_id` resumes after the entry with that id (an SSE `Last-Event-ID`); by default the
    follow starts at the execution's first entry.
    """

    def __init__(
        self,
        db: Database,
        where: LogFilter,
        *,
        after_id: int | None = None,
        poll_seconds: float = POLL_SECONDS,
        engine_check_seconds: float = ENGINE_CHECK_SECONDS,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.db = db
        self.where = where
        self.cursor = after_id
        self.poll_seconds = poll_seconds
        self.engine_check_seconds = engine_check_seconds
        self.page_size = page_size
        self.end_state: str | None = None
        self.lost_engine_pid: int | None = None

    async def _page(self) -> list[LogTuple]:
        """The next page up to what this read can see; the cursor moves past rows the filter
        skipped (a page shorter than `page_size` means this read saw everything)."""
        page, self.cursor = await self.db.read(reads.log_follow_page, self.where, self.cursor, self.page_size)
        return page

    async def batches(self, *, idle: bool = False) -> AsyncIterator[list[LogTuple]]:
        execution_id = self.where.execution_id
        if self.cursor is None:
            self.cursor = await self.db.run(reads.log_start_id, execution_id)
        store = ExecutionStore(self.db)
        next_check = trio.current_time()  # the first quiet poll looks at once (the engine may be long gone)
        while True:
            state = await self.db.run(reads.execution_state, execution_id)
            new = 0
            while True:  # (no inner generator: closing this one must close everything)
                page = await self._page()
                if page:
                    new += len(page)
                    yield page
                if len(page) < self.page_size:
                    break
            if state is None or state in TERMINAL_STATES:
                self.end_state = state
                return
            if new == 0 and trio.current_time() >= next_check:
                next_check = trio.current_time() + self.engine_check_seconds
                row = await store.get(execution_id)
                if row is not None and engine_gone(row.engine_pid, row.engine_host):
                    # dead: nothing more will be written. The state first (it may have
                    # finished just before exiting), then the last entries.
                    state = await self.db.run(reads.execution_state, execution_id)
                    while True:
                        page = await self._page()
                        if page:
                            yield page
                        if len(page) < self.page_size:
                            break
                    self.end_state = state
                    if state is not None and state not in TERMINAL_STATES:
                        self.lost_engine_pid = row.engine_pid
                    return
            if new == 0 and idle:
                yield []
            await trio.sleep(self.poll_seconds)
