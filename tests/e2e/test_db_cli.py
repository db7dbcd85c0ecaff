"""`kestra-trio db ...` run as the installed command, against a database in tmp_path."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kestra_trio.storage.migrate import available_migrations

pytestmark = pytest.mark.slow  # starts the real CLI or engine and its processes (--quick skips it)

KESTRA_TRIO = str(Path(sys.executable).with_name("kestra-trio"))
DAY_MS = 86_400_000


def run(*args: str, env: dict[str, str] | None = None, home: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KESTRA_TRIO_", "AUTOKESTRA_"))}
    clean.update({"HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "NO_COLOR": "1", "COLUMNS": "100"})
    clean.update(env or {})
    return subprocess.run(
        [KESTRA_TRIO, *args], capture_output=True, text=True, env=clean, timeout=60, check=False
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kestra-trio: error: ") and text in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "kestra.db"


MIGRATIONS = available_migrations()
LATEST = MIGRATIONS[-1].version


def test_migrate_then_up_to_date(db: Path, tmp_path: Path) -> None:
    first = run("db", "migrate", "--db", str(db), home=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        *(f"applied migration {m.version:04d}_{m.name}" for m in MIGRATIONS), f"database {db} is now at version {LATEST}",
    ]
    second = run("db", "migrate", "--db", str(db), home=tmp_path)
    assert (second.returncode, second.stdout) == (0, f"database is up to date (version {LATEST})\n")


def test_rollback_and_reapply(db: Path, tmp_path: Path) -> None:
    assert run("db", "migrate", "--db", str(db), home=tmp_path).returncode == 0
    result = run("db", "rollback", "--to", "0", "--db", str(db), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        *(f"rolled back migration {m.version:04d}_{m.name}" for m in reversed(MIGRATIONS)), f"database {db} is now at version 0",
    ]
    with sqlite3.connect(db) as raw:
        names = {n for (n,) in raw.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}
    assert names == {"schema_migrations"}
    again = run("db", "rollback", "--to", "0", "--db", str(db), home=tmp_path)
    assert (again.returncode, again.stdout) == (0, "nothing to roll back (version 0)\n")
    assert run("db", "migrate", "--db", str(db), home=tmp_path).stdout.startswith("applied migration 0001_init")


def test_rollback_needs_to(db: Path, tmp_path: Path) -> None:
    assert_one_error_line(run("db", "rollback", "--db", str(db), home=tmp_path), 2, "--to")
    # "1.4" would otherwise be rounded to 1 and roll back further than asked
    assert_one_error_line(run("db", "rollback", "--to", "1.4", "--db", str(db), home=tmp_path), 2, "whole number")


def insert_rows(db: Path, *, old: int, recent: int) -> None:
    now = int(time.time() * 1000)
    with sqlite3.connect(db) as raw:
        raw.execute(
            "INSERT INTO executions (id, workflow_id, state, created_at, updated_at, log_entry_count) "
            "VALUES ('ex-1', 'wf', 'SUCCESS', 0, 0, ?)",
            (old + recent,),
        )
        raw.executemany(
            "INSERT INTO execution_logs (execution_id, timestamp, level, source, message) VALUES ('ex-1', ?, 'INFO', 'worker', ?)",
            [(now - 45 * DAY_MS, f"old {i}") for i in range(old)] + [(now - 1000, f"new {i}") for i in range(recent)],
        )
        raw.executemany(
            "INSERT INTO execution_audit_events (execution_id, event_type, timestamp, metadata) VALUES ('ex-1', 'STATE_CHANGE', ?, '{}')",
            [(now - 45 * DAY_MS,), (now - 45 * DAY_MS,), (now - 1000,)],
        )
    raw.close()


def counts(db: Path) -> tuple[int, int, int]:
    raw = sqlite3.connect(db)
    try:
        return (
            raw.execute("SELECT COUNT(*) FROM execution_logs").fetchone()[0],
            raw.execute("SELECT COUNT(*) FROM execution_audit_events").fetchone()[0],
            raw.execute("SELECT log_entry_count FROM executions").fetchone()[0],
        )
    finally:
        raw.close()


def test_cleanup_removes_old_rows(db: Path, tmp_path: Path) -> None:
    assert run("db", "migrate", "--db", str(db), home=tmp_path).returncode == 0
    insert_rows(db, old=2100, recent=5)

    dry = run("db", "cleanup", "--dry-run", "--db", str(db), home=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "would delete 2100 log lines and 2 audit events in 4 batch(es)" in dry.stdout
    assert "dry run: nothing was deleted" in dry.stdout
    assert counts(db) == (2105, 3, 2105)

    done = run("db", "cleanup", "--db", str(db), home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("retention: 30 days (rows older than ")
    assert "deleted 2100 log lines and 2 audit events in 4 batch(es)" in done.stdout
    assert counts(db) == (5, 1, 5)

    stats = json.loads(run("db", "stats", "--json", "--db", str(db), home=tmp_path).stdout)
    assert stats["last_cleanup"] is not None and stats["logs_rows"] == 5


def test_cleanup_honours_the_alias(db: Path, tmp_path: Path) -> None:
    assert run("db", "migrate", "--db", str(db), home=tmp_path).returncode == 0
    insert_rows(db, old=3, recent=2)
    result = run("db", "cleanup", "--db", str(db), env={"AUTOKESTRA_LOG_RETENTION_DAYS": "60"}, home=tmp_path)
    assert result.returncode == 0 and "retention: 60 days" in result.stdout
    assert counts(db) == (5, 3, 5)


@pytest.mark.parametrize("value", ["abc", "0", "-3"])
def test_invalid_retention_is_one_line_and_exit_2(db: Path, tmp_path: Path, value: str) -> None:
    result = run("db", "cleanup", "--db", str(db), env={"KESTRA_TRIO_LOG_RETENTION_DAYS": value}, home=tmp_path)
    assert_one_error_line(result, 2, "KESTRA_TRIO_LOG_RETENTION_DAYS must be")
    assert not db.exists()  # checked before the database is touched


def test_stats_json_and_size_warning(db: Path, tmp_path: Path) -> None:
    assert run("db", "migrate", "--db", str(db), home=tmp_path).returncode == 0
    insert_rows(db, old=0, recent=300)
    result = run("db", "stats", "--json", "--db", str(db), home=tmp_path)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["logs_rows"] == 300 and stats["audit_rows"] == 3
    assert stats["size_method"] in ("dbstat", "estimate")
    assert 0 < stats["audit_bytes"] < stats["logs_bytes"] <= stats["file_bytes"] + stats["wal_bytes"]
    assert stats["last_cleanup"] is None and stats["warnings"] == []
    assert stats["warning_threshold_bytes"] == 1024**3

    small = run("db", "stats", "--json", "--db", str(db), env={"KESTRA_TRIO_SIZE_WARNING_BYTES": "4096"}, home=tmp_path)
    warnings = json.loads(small.stdout)["warnings"]
    assert any(w.startswith("execution_logs is ") and "KESTRA_TRIO_LOG_RETENTION_DAYS=" in w for w in warnings)

    text = run("db", "stats", "--db", str(db), env={"KESTRA_TRIO_SIZE_WARNING_BYTES": "4096"}, home=tmp_path)
    assert text.returncode == 0
    assert "logs          300 rows, ~" in text.stdout
    assert "last cleanup  never" in text.stdout
    assert "warning: execution_logs is " in text.stdout


def test_invalid_size_threshold(db: Path, tmp_path: Path) -> None:
    result = run("db", "stats", "--db", str(db), env={"KESTRA_TRIO_SIZE_WARNING_BYTES": "1GB"}, home=tmp_path)
    assert_one_error_line(result, 2, "KESTRA_TRIO_SIZE_WARNING_BYTES must be a whole number of bytes")
    assert not db.exists()  # checked before the database is touched


def test_missing_database_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    for command in (["stats"], ["cleanup"], ["rollback", "--to", "0"]):
        assert_one_error_line(run("db", *command, "--db", str(missing), home=tmp_path), 3, f"no database at {missing}")
    assert not missing.exists()


def test_garbage_file_is_exit_3(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(8192))
    for command in (["migrate"], ["stats"]):
        result = run("db", *command, "--db", str(garbage), home=tmp_path)
        assert_one_error_line(result, 3, "not a kestra-trio database or the file is corrupt")


def test_foreign_sqlite_file_is_exit_3(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as raw:
        raw.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    raw.close()
    for command in (["migrate"], ["rollback", "--to", "0"], ["stats"]):
        result = run("db", *command, "--db", str(other), home=tmp_path)
        assert_one_error_line(result, 3, "this SQLite file belongs to something else")
    raw = sqlite3.connect(other)
    assert [n for (n,) in raw.execute("SELECT name FROM sqlite_master")] == ["customers"]
    raw.close()


def test_newer_database_is_exit_3(db: Path, tmp_path: Path) -> None:
    assert run("db", "migrate", "--db", str(db), home=tmp_path).returncode == 0
    with sqlite3.connect(db) as raw:
        raw.execute("INSERT INTO schema_migrations VALUES (42, 'future', 0)")
    raw.close()
    assert_one_error_line(run("db", "migrate", "--db", str(db), home=tmp_path), 3, "upgrade kestra-trio")


def test_db_env_variable_is_used(db: Path, tmp_path: Path) -> None:
    result = run("db", "migrate", env={"KESTRA_TRIO_DB": str(db)}, home=tmp_path)
    assert result.returncode == 0 and db.exists()
