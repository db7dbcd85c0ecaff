"""Open the SQLite database through sqlite-anyio: WAL, pragmas, migrations, one writer connection.

Every write is one plain-Python function that runs a whole transaction in sqlite-anyio's
worker thread (`Database.write`). That costs one thread hop per transaction instead of one
per statement, and a transaction can never be interrupted halfway by a trio cancellation:
the thread call is not abandoned, so a state change and its audit events are one transaction.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
import sqlite_anyio

from kestra_trio.errors import DatabaseCorrupt, StorageError

T = TypeVar("T")

BUSY_TIMEOUT_MS = 15_000
_BUSY_RETRIES = 20


def _configure(raw: sqlite3.Connection, readonly: bool) -> None:
    raw.isolation_level = None  # explicit BEGIN IMMEDIATE / COMMIT only
    raw.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not readonly:
        from kestra_trio.storage.migrate import _check_ours

        _check_ours(raw)  # before WAL: SQLite keeps the journal mode, so never touch a foreign file
        mode = raw.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal" and raw.execute("PRAGMA database_list").fetchone()[2]:
            raise StorageError(f"cannot switch the database to WAL mode (got {mode!r})")
    raw.execute("PRAGMA synchronous = NORMAL")
    raw.execute("PRAGMA foreign_keys = ON")
    raw.execute("PRAGMA temp_store = MEMORY")
    raw.execute("PRAGMA cache_size = -16000")


def _describe(path: Path, exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "file is encrypted" in text
    ):
        return f"{path}: not a kestra-trio database or the file is corrupt ({text})"
    if "unable to open database file" in text and path.is_file():
        # the file is there: what failed is usually the -wal/-shm files WAL mode creates beside it
        text += f" (SQLite also creates {path.name}-wal and {path.name}-shm there: the folder must be writable)"
    return f"cannot open database {path}: {text}"


class Database:
    """One sqlite-anyio connection plus helpers to run whole transactions in its worker thread."""

    def __init__(self, conn: sqlite_anyio.Connection, path: Path | None) -> None:
        self.conn = conn
        self.path = path
        self._raw: sqlite3.Connection = conn._real_connection  # sqlite-anyio's own connection
        self._limiter = conn._limiter  # sqlite-anyio serialises each connection through this

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(raw_connection, *args)` in the connection's worker thread (not interruptible)."""
        call = partial(fn, self._raw, *args) if fn is _in_write_txn else partial(_tolerant_reads, fn, self._raw, *args)
        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """A consistent read: `fn` runs inside one read transaction (one WAL snapshot)."""
        return await self._retry_busy(_in_read_txn, fn, *args)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` inside BEGIN IMMEDIATE … COMMIT; retried while another engine holds the lock."""
        return await self._retry_busy(_in_write_txn, fn, *args)

    async def _retry_busy(self, txn: Callable[..., T], fn: Callable[..., T], *args: Any) -> T:
        # SQLite skips its busy timeout where waiting could deadlock (and while a WAL index
        # is rebuilt); a whole transaction is safe to run again, so run it again.
        delay = 0.05
        for attempt in range(_BUSY_RETRIES):
            try:
                return await self.run(txn, fn, *args)
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or attempt == _BUSY_RETRIES - 1:
                    raise
            await anyio.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")


def is_storage_failure(exc: BaseException) -> bool:
    """True when `exc` (or the first leaf of an exception group) comes from the database:
    a broken or refusing database is not a bug of ours (reason DATABASE_ERROR, exit 3)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return isinstance(exc, (sqlite3.Error, StorageError))


def is_busy(exc: BaseException) -> bool:
    text = str(exc)
    return "database is locked" in text or "database is busy" in text


def _lenient_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _tolerant_reads(fn: Callable[..., T], raw: sqlite3.Connection, *args: Any) -> T:
    """Run a read; if a stored text is not UTF-8 (a hand-edited row), run it once more with
    such bytes shown as U+FFFD, so one bad row does not make the whole log unreadable. The
    fast C decoder stays the default: only the failing read pays for the Python one."""
    try:
        return fn(raw, *args)
    except sqlite3.OperationalError as exc:
        if "Could not decode to UTF-8" not in str(exc):
            raise
    previous = raw.text_factory
    raw.text_factory = _lenient_text
    try:
        return fn(raw, *args)
    finally:
        raw.text_factory = previous


def _in_write_txn(raw: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    raw.execute("BEGIN IMMEDIATE")
    try:
        result = fn(raw, *args)
        raw.execute("COMMIT")
    except BaseException:
        # a COMMIT refused (disk full, I/O error) can leave the transaction open: end it, or
        # every later BEGIN fails ("within a transaction") after the disk has room again
        _rollback_quietly(raw)
        raise
    return result


def _rollback_quietly(raw: sqlite3.Connection) -> None:
    if raw.in_transaction:
        try:
            raw.execute("ROLLBACK")
        except sqlite3.Error:  # the original error is the one worth raising
            pass


def _in_read_txn(raw: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    raw.execute("BEGIN")
    try:
        return fn(raw, *args)
    finally:
        if raw.in_transaction:
            raw.execute("COMMIT")


async def _prepare(db: Database, migrate: bool) -> None:
    """Configure and migrate, retried while other engines open the same new file.

    SQLite answers "database is locked" at once, without waiting for the busy timeout, when two
    connections race to switch a new file to WAL or to apply its first migration (it would
    otherwise risk a deadlock). Every step here is idempotent, so the whole sequence is retried
    until the busy timeout has passed.
    """
    from kestra_trio.storage.migrate import apply_migrations

    deadline = anyio.current_time() + BUSY_TIMEOUT_MS / 1000
    delay = 0.02
    while True:
        try:
            await db.run(_configure, False)
            if migrate:
                await apply_migrations(db)
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or anyio.current_time() + delay > deadline:
                raise
        await anyio.sleep(delay)
        delay = min(delay * 2, 0.5)


@asynccontextmanager
async def open_database(
    path: str | os.PathLike[str] | None,
    *,
    migrate: bool = True,
    must_exist: bool = False,
) -> AsyncIterator[Database]:
    """Open (creating if needed) and migrate the database at `path`.

    With `must_exist=True` a missing file opens an empty in-memory database instead, so
    read-only commands answer "not found" without creating files.

    Raises:
        DatabaseCorrupt: the file is not a SQLite database, or not ours.
        StorageError: the file or its folder cannot be opened or created.
    """
    db_path = Path(path) if path is not None else None
    target = ":memory:"
    if db_path is not None:
        if must_exist and not db_path.exists():
            db_path = None
        else:
            if db_path.is_dir():
                raise StorageError(f"cannot open database {db_path}: it is a directory")
            try:
                db_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create folder for database {db_path}: {exc.strerror or exc}") from None
            target = str(db_path)
    try:
        conn = await sqlite_anyio.connect(target)
    except sqlite3.Error as exc:
        raise StorageError(_describe(Path(target), exc)) from None
    db = Database(conn, db_path)
    try:
        try:
            await _prepare(db, migrate)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and is_busy(exc):
                raise StorageError(f"database {target} is locked by another process; try again") from None
            if isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlite_errorcode", None) in (
                sqlite3.SQLITE_CANTOPEN,
                sqlite3.SQLITE_READONLY,
            ):
                raise StorageError(_describe(Path(target), exc)) from None
            raise DatabaseCorrupt(_describe(Path(target), exc)) from None
        except OSError as exc:  # pragma: no cover - e.g. EACCES surfacing from the OS
            raise StorageError(f"cannot open database {target}: {os.strerror(exc.errno or errno.EIO)}") from None
        yield db
    finally:
        with anyio.CancelScope(shield=True):
            await conn.close()
