"""QUEUED executions are rows: they survive a kill -9 of the process that enqueued them, `run`
neither steals nor recovers them, and `execution cancel` ends one that nobody holds."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts the real CLI or engine and its processes (--quick skips it)

CLI = str(Path(sys.executable).with_name("kestra-trio"))
ENV = {**os.environ, "NO_COLOR": "1"}

ENQUEUE_THEN_HANG = """
import sys, trio
from kestra_trio.engine.context import EngineOptions
from kestra_trio.plugin_runtime.registry import PluginRegistry
from kestra_trio.service.app import ServiceConfig, open_service
from kestra_trio.service.registry import load_file
from kestra_trio.storage.executions import DEFAULT_QUEUE
from pathlib import Path

async def main():
    registry = PluginRegistry.discover()
    loaded = load_file(Path(sys.argv[2]), registry)
    config = ServiceConfig(sys.argv[1], registry, EngineOptions(handle_signals=False))
    async with open_service(config) as service:
        [applied] = await service.workflows.apply([loaded.source])
        execution_id = await service.enqueue(loaded.workflow, {}, queue=DEFAULT_QUEUE,
                                             workflow_revision=applied.revision, trigger_type="api")
        print(execution_id, flush=True)
        await trio.sleep_forever()

trio.run(main)
"""


def rows(db: Path, sql: str, *params):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def enqueue_and_kill(tmp_path: Path, db: Path) -> str:
    workflow = tmp_path / "hello.yaml"
    workflow.write_text("id: hello\ntasks:\n  - id: a\n    type: core/shell.run\n    inputs: {command: 'echo hi'}\n")
    with subprocess.Popen([sys.executable, "-c", ENQUEUE_THEN_HANG, str(db), str(workflow)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        execution_id = proc.stdout.readline().strip()
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=10)
    assert execution_id, err
    return execution_id


def test_a_queued_execution_survives_kill_9_and_run_leaves_it_alone(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    queued = enqueue_and_kill(tmp_path, db)
    assert rows(db, "SELECT state, queue, engine_pid FROM executions WHERE id = ?", queued) == [("QUEUED", "default", None)]
    other = tmp_path / "other.yaml"
    other.write_text("id: other\ntasks:\n  - id: a\n    type: core/shell.run\n    inputs: {command: 'true'}\n")
    result = subprocess.run([CLI, "run", str(other), "--db", str(db)], capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode == 0, result.stderr
    # `run` recovers lost engines at start, runs only its own execution, and leaves the queue as it was
    assert rows(db, "SELECT state FROM executions WHERE id = ?", queued) == [("QUEUED",)]
    listing = subprocess.run([CLI, "execution", "list", "--state", "queued", "--json", "--db", str(db)],
                             capture_output=True, text=True, env=ENV, timeout=60)
    assert [e["id"] for e in json.loads(listing.stdout)] == [queued]
    inspect = subprocess.run([CLI, "execution", "inspect", queued, "--db", str(db)], capture_output=True, text=True,
                             env=ENV, timeout=60)
    assert inspect.stdout.splitlines()[0] == "Execution queued: waiting for a worker of queue default"
    assert "State        QUEUED" in inspect.stdout and "Revision     1 " in inspect.stdout


def test_cancel_ends_a_queued_execution_nobody_holds(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    queued = enqueue_and_kill(tmp_path, db)
    result = subprocess.run([CLI, "execution", "cancel", queued, "--reason", "no server today", "--db", str(db)],
                            capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"Cancel requested for execution {queued}", f"Execution {queued} cancelled"]
    assert rows(db, "SELECT state, reason_code, message, cancelled_by FROM executions") == [
        ("CANCELLED", "EXECUTION_CANCELLED", "cancelled by user: no server today", "user")
    ]
    inspect = subprocess.run([CLI, "execution", "inspect", queued, "--audit", "--db", str(db)],
                             capture_output=True, text=True, env=ENV, timeout=60)
    audit = inspect.stdout.split("Audit events", 1)[1]
    assert audit.index("QUEUED ") < audit.index("CANCEL_REQUESTED") < audit.index("execution: QUEUED → CANCELLED")
    logs = subprocess.run([CLI, "execution", "logs", queued, "--db", str(db)], capture_output=True, text=True, env=ENV, timeout=60)
    assert "Execution cancelled while queued (cancelled by user: no server today); 1 task(s) never started" in logs.stdout
