"""LogStore: batched inserts for the collector, keyset-paged reads for `execution logs`."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from kestra_trio.observability.records import LogEntry, LostEntries
from kestra_trio.storage.rows import (
    LOG_SELECT,
    LogRow,
)

_INSERT = (
    "INSERT INTO execution_logs (execution_id, task_id, timestamp, level, source, message, metadata) "
    "VALUES (?,?,?,?,?,?,?)"
)


def _dump_metadata(metadata: dict) -> str | None:
    if not metadata:
        return None
    return json.dumps(metadata, ensure_ascii=False, separators=(",", ":"), default=str)


def insert_logs_sync(raw: sqlite3.Connection, entries: Sequence[LogEntry]) -> None:
    """Insert a batch and keep `executions.log_entry_count` exact, in the caller's transaction."""
    encoded: dict[int, str | None] = {}  # stream readers share one metadata dict per stream

    def metadata(e: LogEntry) -> str | None:
        key = id(e.metadata)
        if key not in encoded:
            encoded[key] = _dump_metadata(e.metadata)
        return encoded[key]

    raw.executemany(
        _INSERT,
        [(e.execution_id, e.task_id, e.timestamp, str(e.level), e.source, e.message, metadata(e)) for e in entries],
    )
    counts = Counter(e.execution_id for e in entries)
    raw.executemany(
        "UPDATE executions SET log_entry_count = log_entry_count + ? WHERE id = ?",
        [(n, eid) for eid, n in counts.items()],
    )


def record_lost_sync(raw: sqlite3.Connection, lost: Sequence[LostEntries], entries: Sequence[LogEntry]) -> None:
    """One ERROR entry per loss (at the place of the gap), then `entries`; adds each loss to
    `executions.log_entries_lost`. In the caller's transaction."""
    insert_logs_sync(raw, [*(item.gap_entry() for item in lost), *entries])
    counts = Counter()
    for item in lost:
        counts[item.execution_id] += item.count
    raw.executemany(
        "UPDATE executions SET log_entries_lost = log_entries_lost + ? WHERE id = ?",
        [(n, eid) for eid, n in counts.items()],
    )


class PartialWrite(Exception):
    """Only the first `committed` batches were written; the cause is chained."""

    def __init__(self, committed: int, cause: BaseException) -> None:
        super().__init__(f"{cause} (after {committed} committed batch(es))")
        self.committed = committed


def _insert_batches(raw: sqlite3.Connection, batches: Sequence[Sequence[LogEntry]]) -> int:
    from kestra_trio.storage.db import _in_write_txn

    for index, batch in enumerate(batches):
        try:
            _in_write_txn(raw, insert_logs_sync, batch)
        except sqlite3.Error as exc:
            raise PartialWrite(index, exc) from exc
    return len(batches)


@dataclass(frozen=True)
class LogFilter:
    execution_id: str
    task_id: str | None = None
    levels: tuple[str, ...] = ()
    since_ms: int | None = None
    source_prefix: str | None = None


def filter_clauses(f: LogFilter) -> tuple[list[str], list]:
    """WHERE clauses (joined with AND) and parameters for a log filter: the one place they are built."""
    clauses, params = ["execution_id = ?"], [f.execution_id]
    if f.task_id is not None:
        clauses.append("task_id = ?")
        params.append(f.task_id)
    if f.levels:
        clauses.append(f"level IN ({','.join('?' * len(f.levels))})")
        params.extend(f.levels)
    if f.since_ms is not None:
        clauses.append("timestamp >= ?")
        params.append(f.since_ms)
    if f.source_prefix:
        clauses.append("substr(source, 1, ?) = ?")
        params.extend([len(f.source_prefix), f.source_prefix])
    return clauses, params


def _as_rows(f: LogFilter, tuples: list[tuple]) -> list[LogRow]:
    return [LogRow.from_row((t[0], f.execution_id, *t[1:])) for t in tuples]


def _page_by_time(raw: sqlite3.Connection, f: LogFilter, after: tuple[int, int] | None, limit: int) -> list[LogRow]:
    from kestra_trio.storage.reads import log_page_by_time

    return _as_rows(f, log_page_by_time(raw, f, after, limit))


def _page_by_id(raw: sqlite3.Connection, f: LogFilter, after_id: int, limit: int) -> list[LogRow]:
    from kestra_trio.storage.reads import log_page_by_id

    return _as_rows(f, log_page_by_id(raw, f, after_id, limit))


def _count(raw: sqlite3.Connection, f: LogFilter) -> int:
    clauses, params = filter_clauses(f)
    return raw.execute(f"SELECT COUNT(*) FROM execution_logs WHERE {' AND '.join(clauses)}", params).fetchone()[0]


def _tail(raw: sqlite3.Connection, execution_id: str, task_id: str, limit: int) -> list[LogRow]:
    rows = raw.execute(
        f"SELECT {LOG_SELECT} FROM execution_logs WHERE execution_id = ? AND task_id = ? "
        "ORDER BY timestamp DESC, id DESC LIMIT ?",
        (execution_id, task_id, limit),
    ).fetchall()
    return [LogRow.from_row(r) for r in reversed(rows)]


class LogStore:
    def __init__(self, db) -> None:  # db: Database
        self.db = db

    async def insert_batch(self, entries: Sequence[LogEntry]) -> None:
        await self.db.write(insert_logs_sync, entries)

    async def record_lost(self, lost: Sequence[LostEntries], entries: Sequence[LogEntry] = ()) -> None:
        """Store the losses (an ERROR entry each, and the executions' `log_entries_lost`) and
        then `entries`, in one transaction."""
        await self.db.write(record_lost_sync, lost, entries)

    async def insert_batches(self, batches: Sequence[Sequence[LogEntry]]) -> int:
        """Several batches, one transaction each, in ONE hop to the database thread.

        Raises:
            PartialWrite: a batch failed; `committed` batches before it are stored.
        """
        return await self.db.run(_insert_batches, batches)

    async def page_by_time(self, f: LogFilter, after: tuple[int, int] | None = None, limit: int = 1000) -> list[LogRow]:
        """Rows ordered by (timestamp, id), strictly after the keyset cursor `after`."""
        return await self.db.run(_page_by_time, f, after, limit)

    async def page_by_id(self, f: LogFilter, after_id: int = 0, limit: int = 1000) -> list[LogRow]:
        """Rows ordered by id (commit order), strictly after `after_id`: the --follow cursor."""
        return await self.db.run(_page_by_id, f, after_id, limit)

    async def count(self, f: LogFilter) -> int:
        return await self.db.run(_count, f)

    async def tail(self, execution_id: str, task_id: str, limit: int = 20) -> list[LogRow]:
        return await self.db.run(_tail, execution_id, task_id, limit)
