"""`concurrency:` through the real CLI: two `kestra-trio run` processes of a limit-1 workflow on
one database — the second waits its turn (queue) or ends at once (fail / cancel) with the reason."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts the real CLI and its processes

CLI = str(Path(sys.executable).with_name("kestra-trio"))
ENV = {**os.environ, "NO_COLOR": "1"}


def workflow(tmp_path: Path, behavior: str) -> Path:
    """Its task runs until the test creates `release` (the first execution holds the limit)."""
    path = tmp_path / "limited.yaml"
    release = tmp_path / "release"
    path.write_text(
        f"id: limited\nconcurrency: {{limit: 1, behavior: {behavior}}}\n"
        "tasks:\n  - id: a\n    type: core/shell.run\n"
        f"    inputs: {{command: 'while [ ! -f {release} ]; do sleep 0.02; done'}}\n"
    )
    return path


def query(tmp_path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(tmp_path / "k.db", timeout=30) as conn:
        return conn.execute(sql).fetchall()


def start_first(tmp_path: Path, path: Path) -> subprocess.Popen:
    first = subprocess.Popen([CLI, "run", str(path), "--db", str(tmp_path / "k.db")], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while True:  # the real condition: the first execution runs
        if (tmp_path / "k.db").exists() and query(tmp_path, "SELECT 1 FROM sqlite_master WHERE name = 'executions'"):
            if query(tmp_path, "SELECT count(*) FROM executions WHERE state = 'RUNNING'") == [(1,)]:
                return first
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()[0]
        time.sleep(0.02)


@pytest.mark.parametrize(("behavior", "state"), [("fail", "FAILED"), ("cancel", "CANCELLED")])
def test_the_second_run_ends_at_once_with_the_reason(tmp_path: Path, behavior: str, state: str) -> None:
    path = workflow(tmp_path, behavior)
    first = start_first(tmp_path, path)
    second = subprocess.run([CLI, "run", str(path), "--db", str(tmp_path / "k.db")], env=ENV,
                            capture_output=True, text=True, timeout=60)
    (tmp_path / "release").touch()
    first_out, _ = first.communicate(timeout=60)
    assert first.returncode == 0, first_out
    assert second.returncode != 0
    assert f"{state} in 0ms [CONCURRENCY_LIMIT] - 1 task: 1 CANCELLED" in second.stdout + second.stderr
    assert "workflow limited already runs 1 execution(s), its concurrency limit" in second.stdout + second.stderr


def test_the_second_run_waits_its_turn(tmp_path: Path) -> None:
    path = workflow(tmp_path, "queue")
    first = start_first(tmp_path, path)
    second = subprocess.Popen([CLI, "run", str(path), "--db", str(tmp_path / "k.db")], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while query(tmp_path, "SELECT count(*) FROM executions WHERE state = 'QUEUED'") != [(1,)]:
        assert time.monotonic() < deadline and second.poll() is None, second.communicate()[0]
        time.sleep(0.02)
    (tmp_path / "release").touch()  # the first ends: the second gets its turn
    first.communicate(timeout=60)
    second_out, _ = second.communicate(timeout=60)
    assert (first.returncode, second.returncode) == (0, 0), second_out
    with sqlite3.connect(tmp_path / "k.db") as conn:
        spans = conn.execute("SELECT started_at, ended_at FROM executions ORDER BY started_at").fetchall()
    assert len(spans) == 2 and spans[0][1] <= spans[1][0]  # the second started after the first ended
