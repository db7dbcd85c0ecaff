"""Several engines and a reader on one database file at the same time: no lock errors, no loss."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts the real CLI or engine and its processes (--quick skips it)

CLI = str(Path(sys.executable).with_name("kestra-trio"))


def test_three_engines_and_a_reader_share_one_database(tmp_path):
    db = tmp_path / "shared.db"
    tasks = "\n".join(
        f"""
          - id: t{i}
            type: core/shell.run
            inputs: {{command: "seq 1 400"}}"""
        for i in range(6)
    )
    workflow = tmp_path / "wf.yaml"
    workflow.write_text(textwrap.dedent(f"""
        id: busy
        tasks:{tasks}
        """))
    env = {**os.environ, "NO_COLOR": "1"}
    engines = [
        subprocess.Popen([CLI, "run", str(workflow), "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(3)
    ]
    reads = 0
    while any(e.poll() is None for e in engines):
        if db.exists():
            with sqlite3.connect(db, timeout=10) as conn:  # a reader, as `execution logs` is
                try:
                    conn.execute("SELECT COUNT(*) FROM execution_logs").fetchone()
                    reads += 1
                except sqlite3.OperationalError as exc:  # only "no such table" before migration
                    assert "no such table" in str(exc)
    outputs = [e.communicate(timeout=60) for e in engines]
    for engine, (out, err) in zip(engines, outputs):
        assert engine.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err
    with sqlite3.connect(db) as conn:
        per_execution = conn.execute(
            "SELECT e.id, e.log_entry_count, COUNT(l.id), SUM(l.source LIKE 'plugin:%') FROM executions e "
            "JOIN execution_logs l ON l.execution_id = e.id GROUP BY e.id"
        ).fetchall()
        assert len(per_execution) == 3
        for _, counted, stored, plugin_lines in per_execution:
            assert counted == stored
            assert plugin_lines == 6 * 400
        # every entry carries its correlation ids
        assert conn.execute("SELECT COUNT(*) FROM execution_logs WHERE execution_id IS NULL").fetchone() == (0,)
        missing_attempt = conn.execute(
            "SELECT COUNT(*) FROM execution_logs WHERE task_id IS NOT NULL "
            "AND json_extract(metadata, '$.attempt') IS NULL AND message NOT LIKE '% not started:%'"
        ).fetchone()
        assert missing_attempt == (0,)
    assert reads > 0
