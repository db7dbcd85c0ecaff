"""Versioned migrations: `NNNN_name.up.sql` / `NNNN_name.down.sql`, one transaction each."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

from kestra_trio.errors import MigrationError, StorageError
from kestra_trio.storage.db import is_busy
from kestra_trio.observability.records import now_ms

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$")

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at INTEGER NOT NULL
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up: str
    down: str


def available_migrations() -> list[Migration]:
    folder = resources.files("kestra_trio.storage") / "migrations"
    found: dict[int, dict[str, str]] = {}
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            slot = found.setdefault(int(match.group(1)), {"name": match.group(2)})
            slot[match.group(3)] = entry.read_text(encoding="utf-8")
    result = []
    for version in sorted(found):
        slot = found[version]
        if "up" not in slot or "down" not in slot:
            raise MigrationError(f"migration {version:04d} needs both an up and a down script")
        result.append(Migration(version, slot["name"], slot["up"], slot["down"]))
    return result


def current_version(raw: sqlite3.Connection) -> int:
    raw.execute(_VERSION_TABLE)
    row = raw.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def _check_ours(raw: sqlite3.Connection) -> None:
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables and "schema_migrations" not in tables and "executions" not in tables:
        raise StorageError(
            "this SQLite file belongs to something else (no kestra-trio tables); use another --db path"
        )


def _run_script(raw: sqlite3.Connection, body: str, record: str, params: tuple) -> None:
    # executescript commits any open transaction before it starts, so the script opens its
    # own; the version row is then written and committed inside that same transaction.
    try:
        raw.executescript(f"BEGIN IMMEDIATE;\n{body}\n;")
        raw.execute(record, params)
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise


def applied_versions(raw: sqlite3.Connection) -> set[int]:
    raw.execute(_VERSION_TABLE)
    return {int(row[0]) for row in raw.execute("SELECT version FROM schema_migrations")}


def migrate_sync(raw: sqlite3.Connection, target: int | None = None) -> list[int]:
    """Apply pending migrations up to `target` (default: latest), in version order; returns
    the versions applied. Pending = not applied yet, also below the current version: work
    merged in another order than numbered (a database at 3 that lacks 2) gets it too."""
    _check_ours(raw)
    migrations = available_migrations()
    latest = migrations[-1].version if migrations else 0
    target = latest if target is None else target
    version = current_version(raw)
    _refuse_newer(version, latest)
    done = applied_versions(raw)
    applied = []
    for migration in migrations:
        if migration.version <= target and migration.version not in done:
            try:
                _run_script(
                    raw,
                    migration.up,
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, now_ms()),
                )
            except sqlite3.OperationalError as exc:
                # another engine may have applied it between our read and our write
                if migration.version in applied_versions(raw):
                    continue
                if is_busy(exc):
                    raise  # open_database retries the whole sequence
                raise MigrationError(f"migration {migration.version:04d}_{migration.name} failed: {exc}") from None
            applied.append(migration.version)
    return applied


def _refuse_newer(version: int, latest: int) -> None:
    if version > latest:
        raise MigrationError(
            f"database schema version {version} is newer than this kestra-trio knows ({latest}); "
            "upgrade kestra-trio"
        )


def rollback_sync(raw: sqlite3.Connection, to: int) -> list[int]:
    """Roll back every applied migration above version `to`, newest first."""
    if to < 0:
        raise MigrationError("--to must be 0 or a migration version")
    _check_ours(raw)  # else current_version() would create schema_migrations in a foreign file
    version = current_version(raw)
    migrations = available_migrations()
    # a newer kestra-trio's schema: our down scripts do not know its tables, and running
    # them would drop the data under it
    _refuse_newer(version, migrations[-1].version if migrations else 0)
    done = applied_versions(raw)
    rolled = []
    for migration in reversed(migrations):
        if to < migration.version and migration.version in done:
            try:
                _run_script(raw, migration.down, "DELETE FROM schema_migrations WHERE version = ?", (migration.version,))
            except sqlite3.Error as exc:
                raise MigrationError(f"rollback of {migration.version:04d}_{migration.name} failed: {exc}") from None
            rolled.append(migration.version)
    return rolled


async def apply_migrations(db, target: int | None = None) -> list[int]:  # db: Database
    return await db.run(migrate_sync, target)


async def rollback(db, to: int) -> list[int]:
    return await db.run(rollback_sync, to)
