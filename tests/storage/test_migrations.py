"""Migrations: up, down, up again; the chain equals a fresh schema; foreign, newer and garbage files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from kestra_trio.errors import DatabaseCorrupt, MigrationError, StorageError
from kestra_trio.storage.db import open_database
from kestra_trio.storage.migrate import (
    apply_migrations,
    available_migrations,
    current_version,
    migrate_sync,
    rollback,
    rollback_sync,
)

LATEST = available_migrations()[-1].version

TABLES = {
    "executions",
    "task_runs",
    "task_attempts",
    "cancel_requests",
    "execution_logs",
    "execution_audit_events",
    "retention_state",
}
INDEXES = {
    "idx_executions_created",
    "idx_executions_workflow",
    "idx_executions_state",
    "idx_cancel_pending",
    "idx_logs_execution",
    "idx_logs_task",
    "idx_audit_execution",
}
TRIGGERS = {"audit_no_update", "audit_delete_only_expired"}


def objects(raw: sqlite3.Connection, kind: str) -> set[str]:
    return {
        name
        for (name,) in raw.execute(
            "SELECT name FROM sqlite_master WHERE type = ? AND name NOT LIKE 'sqlite_%'", (kind,)
        )
    }


def schema(raw: sqlite3.Connection) -> set[tuple[str, str, str, str]]:
    """Every schema object with its normalised SQL (sqlite_sequence aside)."""
    rows = raw.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return {(t, n, tbl, " ".join((sql or "").split())) for t, n, tbl, sql in rows}


def fresh(path: Path) -> sqlite3.Connection:
    raw = sqlite3.connect(path, isolation_level=None)
    migrate_sync(raw)
    return raw


def test_up_creates_tables_indexes_and_triggers(tmp_path: Path) -> None:
    raw = fresh(tmp_path / "k.db")
    assert current_version(raw) == LATEST
    assert objects(raw, "table") >= TABLES | {"schema_migrations"}
    assert objects(raw, "index") >= INDEXES
    assert objects(raw, "trigger") == TRIGGERS
    assert raw.execute("SELECT id, audit_cutoff, last_cleanup FROM retention_state").fetchall() == [(1, 0, None)]


def test_rollback_to_zero_removes_everything_and_reapply_works(tmp_path: Path) -> None:
    raw = fresh(tmp_path / "k.db")
    assert rollback_sync(raw, 0) == [m.version for m in reversed(available_migrations())]
    assert current_version(raw) == 0
    assert objects(raw, "table") == {"schema_migrations"}
    assert objects(raw, "index") == set()
    assert objects(raw, "trigger") == set()
    assert migrate_sync(raw) == [m.version for m in available_migrations()]
    assert objects(raw, "table") >= TABLES
    assert objects(raw, "index") >= INDEXES
    assert objects(raw, "trigger") == TRIGGERS


def test_step_by_step_and_after_rollback_equals_fresh_schema(tmp_path: Path) -> None:
    expected = schema(fresh(tmp_path / "fresh.db"))

    stepped = sqlite3.connect(tmp_path / "stepped.db", isolation_level=None)
    for migration in available_migrations():
        assert migrate_sync(stepped, migration.version) == [migration.version]
    assert schema(stepped) == expected

    cycled = fresh(tmp_path / "cycled.db")
    rollback_sync(cycled, 0)
    migrate_sync(cycled)
    assert schema(cycled) == expected


def test_migrate_twice_is_a_no_op(tmp_path: Path) -> None:
    raw = fresh(tmp_path / "k.db")
    assert migrate_sync(raw) == []
    assert rollback_sync(raw, LATEST) == []


def test_rollback_below_zero_is_refused(tmp_path: Path) -> None:
    raw = fresh(tmp_path / "k.db")
    with pytest.raises(MigrationError, match="--to must be 0"):
        rollback_sync(raw, -1)


async def test_async_apply_and_rollback(tmp_path: Path) -> None:
    async with open_database(tmp_path / "k.db", migrate=False) as db:
        versions = [m.version for m in available_migrations()]
        assert await apply_migrations(db) == versions
        assert await rollback(db, 0) == versions[::-1]
        assert await db.run(current_version) == 0


async def test_database_newer_than_the_code_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    raw = fresh(path)
    raw.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)")
    raw.close()
    with pytest.raises(MigrationError, match=r"version 9999 is newer .*upgrade kestra-trio"):
        async with open_database(path):
            pass  # pragma: no cover


@pytest.mark.parametrize("to", [0, 1])
def test_rollback_refuses_a_database_newer_than_the_code(tmp_path: Path, to: int) -> None:
    # our down scripts would drop the tables (and the data) under a newer schema
    raw = fresh(tmp_path / "k.db")
    raw.execute("INSERT INTO executions (id, workflow_id, state, created_at, updated_at) VALUES ('e', 'wf', 'SUCCESS', 0, 0)")
    raw.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)")
    before = schema(raw)
    with pytest.raises(MigrationError, match=r"version 9999 is newer .*upgrade kestra-trio"):
        rollback_sync(raw, to)
    assert schema(raw) == before
    assert raw.execute("SELECT id FROM executions").fetchall() == [("e",)]


async def test_foreign_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    raw.commit()
    raw.close()
    with pytest.raises(StorageError, match="belongs to something else") as info:
        async with open_database(path):
            pass  # pragma: no cover
    assert not isinstance(info.value, DatabaseCorrupt)
    check = sqlite3.connect(path)
    assert objects(check, "table") == {"customers"}  # nothing of ours was created in it


def test_rollback_refuses_a_foreign_file(tmp_path: Path) -> None:
    raw = sqlite3.connect(tmp_path / "other.db", isolation_level=None)
    raw.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(StorageError, match="belongs to something else"):
        rollback_sync(raw, 0)
    assert objects(raw, "table") == {"customers"}  # no schema_migrations created in it


async def test_foreign_sqlite_file_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    raw.commit()
    raw.close()
    with pytest.raises(StorageError):
        async with open_database(path):
            pass  # pragma: no cover
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


@pytest.mark.parametrize("size", [16, 100, 4096, 20_000])
async def test_garbage_file_is_database_corrupt(tmp_path: Path, size: int) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(os.urandom(size))
    with pytest.raises(DatabaseCorrupt, match="not a kestra-trio database or the file is corrupt"):
        async with open_database(path):
            pass  # pragma: no cover


async def test_directory_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a directory"):
        async with open_database(tmp_path):
            pass  # pragma: no cover


async def test_concurrent_open_from_tasks(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    versions: list[int] = []

    async def opener() -> None:
        async with open_database(path) as db:
            versions.append(await db.run(current_version))

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(opener)
    assert versions == [LATEST] * 4


def test_concurrent_open_from_processes(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    code = (
        "import sys, trio\n"
        "from kestra_trio.storage.db import open_database\n"
        "from kestra_trio.storage.migrate import current_version\n"
        "async def main():\n"
        "    async with open_database(sys.argv[1]) as db:\n"
        "        print(await db.run(current_version))\n"
        "trio.run(main)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    results = [proc.communicate(timeout=60) for proc in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()
        assert out.decode().strip() == str(LATEST)
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(available_migrations())


async def test_open_waits_while_another_engine_holds_the_write_lock_of_a_new_file(tmp_path: Path) -> None:
    # SQLite refuses the switch to WAL at once, without its busy timeout, while another
    # connection holds the write lock of a not-yet-WAL file: the race two engines starting on a
    # new database can hit. Opening must wait and succeed, not fail with "locked".
    path = tmp_path / "new.db"
    other = fresh(path)  # migrated by another engine, still in rollback-journal mode
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    other.execute("BEGIN IMMEDIATE")

    async def release_later() -> None:
        # real time on purpose: an autojump clock would jump while open_database waits in its thread
        await trio.sleep(0.3)
        other.execute("COMMIT")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(release_later)
        async with open_database(path) as db:
            assert await db.run(current_version) == LATEST
            assert await db.run(lambda raw: raw.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    assert not other.in_transaction
    other.close()


def test_cannot_open_an_existing_file_hints_at_the_folder(tmp_path: Path) -> None:
    from kestra_trio.storage.db import _describe

    path = tmp_path / "a.db"
    path.write_bytes(b"")
    message = _describe(path, sqlite3.OperationalError("unable to open database file"))
    assert message.endswith("(SQLite also creates a.db-wal and a.db-shm there: the folder must be writable)")
    assert "folder" not in _describe(tmp_path / "missing.db", sqlite3.OperationalError("unable to open database file"))


def test_0002_adds_log_entries_lost_to_existing_executions_and_removes_it_again(tmp_path: Path) -> None:
    raw = sqlite3.connect(tmp_path / "k.db", isolation_level=None)
    migrate_sync(raw, 1)
    raw.execute(
        "INSERT INTO executions (id, workflow_id, state, created_at, updated_at, log_entry_count) "
        "VALUES ('ex-1', 'wf', 'SUCCESS', 0, 0, 42)"
    )
    assert migrate_sync(raw) == [m.version for m in available_migrations() if m.version > 1]
    assert raw.execute("SELECT log_entry_count, log_entries_lost FROM executions").fetchall() == [(42, 0)]
    rollback_sync(raw, 1)
    assert raw.execute("SELECT * FROM executions").fetchone()[0] == "ex-1"
    assert "log_entries_lost" not in {r[1] for r in raw.execute("PRAGMA table_info(executions)")}


def test_a_migration_merged_after_a_higher_one_is_applied_and_rolled_back_in_version_order(tmp_path: Path) -> None:
    # main's databases went 1 → 3 → 6 before 0002 landed: the gap is filled, not skipped
    from kestra_trio.storage.migrate import _run_script, applied_versions

    raw = sqlite3.connect(tmp_path / "k.db", isolation_level=None)
    migrate_sync(raw, 1)
    for migration in available_migrations():
        if migration.version > 2:
            _run_script(
                raw, migration.up, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)",
                (migration.version, migration.name),
            )
    assert 2 not in applied_versions(raw) and current_version(raw) == LATEST
    assert migrate_sync(raw) == [2]
    assert "log_entries_lost" in {r[1] for r in raw.execute("PRAGMA table_info(executions)")}
    assert migrate_sync(raw) == []
    other = fresh(tmp_path / "fresh.db")
    # the same schema as a fresh database; only the order of the executions' added columns differs
    assert {o for o in schema(raw) if o[1] != "executions"} == {o for o in schema(other) if o[1] != "executions"}
    columns = "SELECT name, type, \"notnull\", dflt_value FROM pragma_table_info('executions') ORDER BY name"
    assert raw.execute(columns).fetchall() == other.execute(columns).fetchall()
    assert rollback_sync(raw, 0) == [m.version for m in reversed(available_migrations())]
    assert applied_versions(raw) == set()
