"""A database edited by hand or by another program: odd values are shown, never a crash."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts the real CLI or engine and its processes (--quick skips it)

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("kestra-trio"))


def kt(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([CLI, *args, "--db", str(db)], capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture(scope="module")
def tampered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    db = tmp_path_factory.mktemp("tampered") / "k.db"
    assert kt("run", str(ROOT / "examples" / "hello.yaml"), db=db).returncode == 0
    with sqlite3.connect(db) as conn:
        (execution_id,) = conn.execute("SELECT id FROM executions").fetchone()
        conn.executemany(
            "INSERT INTO execution_logs (execution_id, task_id, timestamp, level, source, message, metadata) "
            "VALUES (?, 'echo', ?, 'INFO', 'x', ?, '{}')",
            [
                (execution_id, 1795250000000, b"raw bytes, valid utf-8"),
                (execution_id, "not a time", "text timestamp"),
                (execution_id, 1795250000000.5, "real timestamp"),
            ],
        )
        conn.execute("UPDATE executions SET started_at = 'x', task_count = 'many' WHERE id = ?", (execution_id,))
        conn.execute("UPDATE task_runs SET duration_ms = 'slow', attempt_count = x'00' WHERE execution_id = ?", (execution_id,))
    return db, execution_id


@pytest.mark.parametrize(
    "args",
    [
        ["execution", "logs", "{id}"],
        ["execution", "logs", "{id}", "--json"],
        ["execution", "logs", "{id}", "--jsonl"],
        ["execution", "inspect", "{id}"],
        ["execution", "inspect", "{id}", "--json"],
        ["execution", "inspect", "{id}", "--timeline"],
        ["execution", "list"],
        ["execution", "list", "--json"],
    ],
)
def test_odd_values_are_shown_not_crashed_on(tampered: tuple[Path, str], args: list[str]) -> None:
    db, execution_id = tampered
    result = kt(*[a.format(id=execution_id) for a in args], db=db)
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr
    if args[1] == "logs" and "--json" not in args:
        assert "raw bytes, valid utf-8" in result.stdout and "text timestamp" in result.stdout


def test_undecodable_bytes_are_shown_replaced_and_the_rest_of_the_log_still_reads(
    tampered: tuple[Path, str], tmp_path: Path
) -> None:
    db, execution_id = tampered
    copy = tmp_path / "bad.db"
    with sqlite3.connect(db) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
        dst.execute(
            "INSERT INTO execution_logs (execution_id, task_id, timestamp, level, source, message) "
            "VALUES (?, 'echo', 1, 'INFO', 'x', ?)",
            (execution_id, b"\xff\xfe not utf-8"),
        )
    for args in (["logs", execution_id], ["logs", execution_id, "--jsonl"], ["inspect", execution_id, "--task", "echo"]):
        result = kt("execution", *args, db=copy)
        assert (result.returncode, result.stderr) == (0, ""), args
        assert "\ufffd\ufffd not utf-8" in result.stdout and "hello" in result.stdout, args


def test_json_columns_of_the_wrong_shape_are_shown_not_crashed_on(tampered: tuple[Path, str], tmp_path: Path) -> None:
    db, execution_id = tampered
    copy = tmp_path / "shapes.db"
    with sqlite3.connect(db) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
        dst.execute("UPDATE task_runs SET error = '\"just a string\"', needs = '\"x\"', state = 'FAILED' WHERE execution_id = ?", (execution_id,))
        dst.execute("DROP TRIGGER audit_no_update")
        dst.execute("UPDATE execution_audit_events SET metadata = '[\"x\"]' WHERE execution_id = ?", (execution_id,))
    for args in (["inspect", execution_id], ["inspect", execution_id, "--audit", "--timeline"], ["inspect", execution_id, "--json"]):
        result = kt("execution", *args, db=copy)
        assert "internal error" not in result.stderr and result.returncode == 0, (args, result.stderr)
    assert "just a string" in kt("execution", "inspect", execution_id, db=copy).stdout


def test_stored_control_characters_never_reach_the_terminal(tampered: tuple[Path, str], tmp_path: Path) -> None:
    db, execution_id = tampered
    copy = tmp_path / "escapes.db"
    hostile = "RUN\x1b[5m\nNING\u202e"
    with sqlite3.connect(db) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
        dst.execute("UPDATE executions SET state = ?, reason_code = ?, trigger_type = ?, cancelled_by = ? WHERE id = ?",
                    (hostile, hostile, hostile, hostile, execution_id))
        dst.execute("UPDATE task_runs SET state = ?, error = ? WHERE execution_id = ? AND task_id = 'echo'",
                    (hostile, '{"type": "T\\u001b[2J", "signal": "S\\nIG", "message": "m"}', execution_id))
        dst.execute("DROP TRIGGER audit_no_update")
        dst.execute("UPDATE execution_audit_events SET event_type = ? WHERE execution_id = ?", (hostile, execution_id))
    for args in (["list"], ["inspect", execution_id, "--audit", "--timeline"], ["inspect", execution_id, "--task", "echo"]):
        result = kt("execution", *args, db=copy)
        assert result.returncode == 0, (args, result.stderr)
        assert "\x1b" not in result.stdout and "\u202e" not in result.stdout, args
        assert "RUN\\x1b[5m\\nNING" in result.stdout, args  # shown escaped, on one line
