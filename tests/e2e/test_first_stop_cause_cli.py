"""A task timeout, then a second stop (the execution timeout, Ctrl+C) during its kill grace,
through the real `kestra-trio run`: the record says what happened first, when it happened."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # starts the real CLI and its processes (--quick skips it)

KT = str(Path(sys.executable).with_name("kestra-trio"))
ENV = {k: v for k, v in os.environ.items() if not k.startswith("KESTRA_TRIO_") and k not in ("NO_COLOR", "FORCE_COLOR")}


def kt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KT, *args, "--db", "k.db"], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=120)


def inspect(execution_id: str, cwd: Path) -> dict[str, Any]:
    shown = kt("execution", "inspect", execution_id, "--audit", "--json", cwd=cwd)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def timeouts(record: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(e["metadata"]["scope"], e["metadata"].get("task_id"))
            for e in record["audit_events"] if e["event_type"] == "TIMEOUT"]


def test_a_task_timeout_then_the_execution_timeout_is_recorded_as_the_task_timeout(tmp_path: Path) -> None:
    # to2.yaml of the bug report, with room for a slow start: the task's 1 s timeout fires
    # first, the execution's comes during the kill grace (SIGTERM is ignored)
    (tmp_path / "to2.yaml").write_text(textwrap.dedent("""
        id: to2
        timeout: 3s
        tasks:
          - id: a
            type: core/shell.run
            timeout: 1s
            inputs: {command: 'trap "" TERM; echo started; sleep 30'}
    """))
    run = kt("run", "to2.yaml", "--kill-grace", "4", "--json", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    record = inspect(json.loads(run.stdout)["execution_id"], tmp_path)
    assert (record["execution"]["state"], record["execution"]["reason"]) == ("FAILED", "TIMEOUT")
    [task] = record["tasks"]
    assert (task["state"], task["reason"], task["error"]["message"]) == ("FAILED", "TIMEOUT", "task timed out after 1s")
    [attempt] = task["attempts"]
    assert (attempt["state"], attempt["reason"], attempt["signal"]) == ("TIMED_OUT", "TIMEOUT", "SIGKILL")
    # both timeouts have their audit event, the task's first (it was written when it fired)
    assert timeouts(record) == [("task", "a"), ("execution", None)]
    logs = kt("execution", "logs", record["execution"]["id"], "--level", "ERROR", cwd=tmp_path).stdout
    fired = logs.index("Task a reached its timeout of 1s (attempt 1); stopping process group ")
    assert fired < logs.index("execution timeout of 3s reached")
    # the kill grace started by the task timeout ran out on its own schedule
    assert "sent SIGTERM, then SIGKILL (the 4s grace period ran out) to process group" in logs


def test_ctrl_c_during_a_task_timeouts_kill_grace_keeps_the_task_timeout(tmp_path: Path) -> None:
    (tmp_path / "to1.yaml").write_text(textwrap.dedent("""
        id: to1
        tasks:
          - id: a
            type: core/shell.run
            timeout: 1s
            inputs: {command: 'trap "" TERM; echo started; sleep 30'}
    """))
    # as from a terminal: SIGINT at its default (a suite started in the background inherits it ignored)
    with subprocess.Popen([KT, "run", "to1.yaml", "--kill-grace", "5", "--json", "--db", "k.db"], cwd=tmp_path, env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as proc:
        # the task timeout is on record while its process is still in the kill grace
        deadline = time.monotonic() + 60
        while not _task_timeout_recorded(tmp_path / "k.db"):
            assert time.monotonic() < deadline and proc.poll() is None, "no task TIMEOUT audit event"
            time.sleep(0.05)
        with sqlite3.connect(tmp_path / "k.db") as conn:
            assert conn.execute("SELECT state FROM task_runs").fetchall() == [("RUNNING",)]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    record = inspect(json.loads(out)["execution_id"], tmp_path)
    assert (record["execution"]["state"], record["execution"]["reason"]) == ("CANCELLED", "EXECUTION_CANCELLED")
    [task] = record["tasks"]
    assert (task["state"], task["reason"]) == ("FAILED", "TIMEOUT")
    assert task["attempts"][0]["state"] == "TIMED_OUT"
    assert timeouts(record) == [("task", "a")]
    [cancelled] = [e["metadata"] for e in record["audit_events"] if e["event_type"] == "CANCELLED"]
    assert (cancelled["cancelled_by"], cancelled["reason"]) == ("user", "received SIGINT")


def _task_timeout_recorded(db: Path) -> bool:
    if not db.exists():
        return False
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return bool(conn.execute(
                "SELECT 1 FROM execution_audit_events WHERE event_type = 'TIMEOUT' AND metadata LIKE '%\"task\"%'"
            ).fetchall())
    except sqlite3.OperationalError:  # the schema is not there yet
        return False
