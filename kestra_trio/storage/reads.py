"""Read-only queries for the `execution` commands: fast log pages and one-transaction snapshots.

Plain sync functions `fn(raw_conn, ...)`, run in the connection's worker thread with
`await db.run(fn, ...)` (or `db.read(fn, ...)` for one consistent WAL snapshot).

The log pages return tuples (`LOG_PAGE_COLUMNS` order), not `LogRow`s: `execution logs`
prints up to a million of them and building a dataclass per row would be most of its cost.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace

from kestra_trio.storage.logs import LogFilter
from kestra_trio.storage.logs import filter_clauses as _log_where
from kestra_trio.storage.rows import (
    ATTEMPT_SELECT,
    AUDIT_SELECT,
    EXECUTION_SELECT,
    LOG_SELECT,
    TASK_RUN_SELECT,
    TASK_RUN_SELECT_WITHOUT_VALUES,
    AttemptRow,
    AuditRow,
    ExecutionRow,
    LogRow,
    TaskRunRow,
    typed,
)

#: column order of the tuples `log_page_by_time` / `log_page_by_id` return
LOG_PAGE_COLUMNS = ("id", "task_id", "timestamp", "level", "source", "message", "metadata")
_PAGE_SELECT = f"SELECT {typed('id, task_id, timestamp, level, source, message, metadata')} FROM execution_logs"

LogTuple = tuple[int, "str | None", int, str, str, str, "str | None"]


def log_page_by_time(
    raw: sqlite3.Connection, f: LogFilter, after: tuple[int, int] | None, limit: int = 1000
) -> list[LogTuple]:
    """Up to `limit` rows ordered by (timestamp, id), strictly after the keyset cursor `after`.

    The row-value comparison lets SQLite seek straight to the cursor in
    `idx_logs_execution` (execution_id, timestamp[, rowid]), so every page costs the same
    however deep into a million-row log it is.
    """
    if after is not None and f.since_ms is not None and after[0] >= f.since_ms:
        # past the first page the cursor already implies `timestamp >= since`; left in, the
        # since bound is the one SQLite seeks to, so every page rescanned from it (quadratic)
        f = replace(f, since_ms=None)
    clauses, params = _log_where(f)
    if after is not None:
        clauses.append("(timestamp, id) > (?, ?)")
        params.extend(after)
    return raw.execute(
        f"{_PAGE_SELECT} INDEXED BY idx_logs_execution WHERE {' AND '.join(clauses)} "
        "ORDER BY timestamp, id LIMIT ?",
        (*params, limit),
    ).fetchall()


def log_start_id(raw: sqlite3.Connection, execution_id: str) -> int:
    """One less than the smallest log id of the execution (0 if none): where --follow starts."""
    row = raw.execute(
        "SELECT MIN(id) FROM execution_logs INDEXED BY idx_logs_execution WHERE execution_id = ?", (execution_id,)
    ).fetchone()
    return (row[0] - 1) if row and row[0] is not None else 0


def log_page_by_id(raw: sqlite3.Connection, f: LogFilter, after_id: int, limit: int = 1000) -> list[LogTuple]:
    """Up to `limit` rows with id > `after_id`, in id (commit) order: the --follow cursor.

    `NOT INDEXED` keeps SQLite on the rowid range (a seek to `after_id`, then rows in order)
    instead of sorting every row of the execution for each page.
    """
    clauses, params = _log_where(f)
    clauses.append("id > ?")
    params.append(after_id)
    return raw.execute(
        f"{_PAGE_SELECT} NOT INDEXED WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?",
        (*params, limit),
    ).fetchall()


def log_follow_page(
    raw: sqlite3.Connection, f: LogFilter, after_id: int, limit: int = 1000
) -> tuple[list[LogTuple], int]:
    """`log_page_by_id` plus the cursor to resume from; run it in ONE read transaction (`db.read`).

    When the page is not full, every row up to the newest id visible in this snapshot has
    been looked at, so the cursor moves there even if the filter matched none of them: a
    follower of a quiet task does not rescan another execution's new rows at every poll.
    That is safe because SQLite has one writer at a time and AUTOINCREMENT ids grow in
    commit order: once id N is visible, no row with a smaller id can appear later.
    """
    rows = log_page_by_id(raw, f, after_id, limit)
    if len(rows) == limit:
        return rows, rows[-1][0]
    top = raw.execute("SELECT MAX(id) FROM execution_logs").fetchone()[0] or 0
    return rows, max(after_id, top, rows[-1][0] if rows else 0)


def execution_state(raw: sqlite3.Connection, execution_id: str) -> str | None:
    row = raw.execute("SELECT state FROM executions WHERE id = ?", (execution_id,)).fetchone()
    return row[0] if row else None


def log_entries_lost(raw: sqlite3.Connection, execution_id: str) -> int:
    """How many entries the engine could not write (the database refused writes)."""
    row = raw.execute("SELECT CAST(log_entries_lost AS INTEGER) FROM executions WHERE id = ?", (execution_id,)).fetchone()
    return int(row[0] or 0) if row else 0


def task_exists(raw: sqlite3.Connection, execution_id: str, task_id: str) -> bool:
    return (
        raw.execute(
            "SELECT 1 FROM task_runs WHERE execution_id = ? AND task_id = ?", (execution_id, task_id)
        ).fetchone()
        is not None
    )


@dataclass(frozen=True)
class SnapshotRows:
    """Everything `execution inspect` shows, read in one transaction (one WAL snapshot)."""

    execution: ExecutionRow
    tasks: list[TaskRunRow]
    attempts: list[AttemptRow]
    audit: list[AuditRow]
    task_logs: list[LogRow]  # last lines of `log_task_id` (empty when not asked)
    taken_at_ms: int


def snapshot_rows(
    raw: sqlite3.Connection, execution_id: str, log_task_id: str | None, log_tail: int, taken_at_ms: int,
    with_values: bool = True,
) -> SnapshotRows | None:
    """At most five SELECTs, whatever the number of tasks: no per-task query. Without
    `with_values` the task runs come without their inputs and outputs."""
    row = raw.execute(f"SELECT {EXECUTION_SELECT} FROM executions WHERE id = ?", (execution_id,)).fetchone()
    if row is None:
        return None
    tasks = [
        TaskRunRow.from_row(r)
        for r in raw.execute(
            f"SELECT {TASK_RUN_SELECT if with_values else TASK_RUN_SELECT_WITHOUT_VALUES} FROM task_runs "
            "WHERE execution_id = ? ORDER BY position",
            (execution_id,),
        )
    ]
    attempts = [
        AttemptRow.from_row(r)
        for r in raw.execute(
            f"SELECT {ATTEMPT_SELECT} FROM task_attempts WHERE execution_id = ? ORDER BY task_id, number",
            (execution_id,),
        )
    ]
    audit = [
        AuditRow.from_row(r)
        for r in raw.execute(
            f"SELECT {AUDIT_SELECT} FROM execution_audit_events WHERE execution_id = ? ORDER BY timestamp, id",
            (execution_id,),
        )
    ]
    logs: list[LogRow] = []
    if log_task_id is not None and log_tail > 0:
        tail = raw.execute(
            f"SELECT {LOG_SELECT} FROM execution_logs INDEXED BY idx_logs_execution "
            "WHERE execution_id = ? AND task_id = ? ORDER BY timestamp DESC, id DESC LIMIT ?",
            (execution_id, log_task_id, log_tail),
        ).fetchall()
        logs = [LogRow.from_row(r) for r in reversed(tail)]
    return SnapshotRows(ExecutionRow.from_row(row), tasks, attempts, audit, logs, taken_at_ms)
