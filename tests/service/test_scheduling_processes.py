"""The scheduling service in real processes on a real SQLite file: an every-second 6-field
cron trigger firing in real time, and kill -9 then restart — nothing fired twice, nothing
queued lost, the execution that was running recorded FAILED [ENGINE_LOST]."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

HARNESS = Path(__file__).with_name("scheduling_process.py")


class Server:
    def __init__(self, db: Path, folder: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HARNESS), str(db), str(folder), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        assert line == "ready\n", self.process.stderr.read()  # type: ignore[union-attr]

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=60)
        return self.process.returncode, stderr

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.communicate(timeout=60)


def query(db: Path, sql: str, *params: Any) -> list[tuple]:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(sql, params).fetchall()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(textwrap.dedent(text))


def test_a_six_field_every_second_trigger_fires_each_second_in_real_time(tmp_path: Path) -> None:
    db, folder = tmp_path / "k.db", tmp_path / "workflows"
    write(folder, "tick", """
        id: tick
        triggers:
          - id: every_second
            type: cron
            cron: "* * * * * *"
            timezone: Europe/Paris
        tasks:
          - id: a
            type: core/shell.run
            inputs: {command: "echo {{ trigger.type }} {{ trigger.scheduled_at }}"}
        """)
    server = Server(db, folder)
    wait_until(lambda: query(db, "SELECT count(*) FROM executions WHERE state = 'SUCCESS'")[0][0] >= 4, "4 fires")
    code, stderr = server.stop()
    assert code == 0, stderr
    fires = query(
        db,
        "SELECT f.scheduled_at, e.state, e.trigger_type, e.trigger_data FROM trigger_fires f "
        "JOIN executions e ON e.id = f.execution_id ORDER BY f.scheduled_at",
    )
    times = [at for at, *_ in fires]
    assert len(fires) >= 4 and all(at % 1000 == 0 for at in times)
    assert [b - a for a, b in zip(times, times[1:])] == [1000] * (len(times) - 1)  # every second, none twice
    lines = {message for (message,) in query(db, "SELECT message FROM execution_logs WHERE source LIKE 'plugin:%'")}
    for _, state, trigger_type, data in fires:
        scheduled = json.loads(data)["scheduled_at"]
        assert trigger_type == "cron" and scheduled.endswith("+01:00")
        if state == "SUCCESS":
            assert f"cron {scheduled}" in lines


def test_kill_9_then_restart_fires_nothing_twice_and_loses_nothing_queued(tmp_path: Path) -> None:
    db, folder = tmp_path / "k.db", tmp_path / "workflows"
    write(folder, "busy", """
        id: busy
        concurrency: {limit: 1}
        triggers:
          - id: every_second
            type: cron
            cron: "* * * * * *"
        tasks:
          - id: a
            type: core/shell.run
            inputs: {command: "sleep 1.5"}
        """)
    server = Server(db, folder)
    wait_until(
        lambda: query(db, "SELECT count(*) FROM executions WHERE state = 'QUEUED'")[0][0] >= 2
        and query(db, "SELECT count(*) FROM executions WHERE state = 'RUNNING'")[0][0] == 1,
        "a queue behind a running execution",
    )
    server.kill()
    running = [eid for (eid,) in query(db, "SELECT id FROM executions WHERE state = 'RUNNING'")]
    queued = [eid for (eid,) in query(db, "SELECT id FROM executions WHERE state = 'QUEUED'")]
    last_fire = query(db, "SELECT max(scheduled_at) FROM trigger_fires")[0][0]
    assert len(running) == 1 and len(queued) >= 2
    # down long enough to miss fire times (catch_up: last fires only the most recent missed one)
    wait_until(lambda: time.time() * 1000 > last_fire + 7_000, "missed fire times", timeout=30)
    restarted_at = int(time.time() * 1000)
    server = Server(db, folder)
    marks = ",".join("?" * len(queued))
    wait_until(
        lambda: query(db, f"SELECT count(*) FROM executions WHERE id IN ({marks}) AND state = 'SUCCESS'", *queued)[0][0]
        == len(queued),
        "the executions queued before the kill to run",
    )
    code, stderr = server.stop()
    assert code == 0, stderr
    assert query(db, "SELECT state, reason_code FROM executions WHERE id = ?", running[0]) == [("FAILED", "ENGINE_LOST")]
    # every fire created exactly one execution, and no scheduled time has two
    fires = query(db, "SELECT scheduled_at, execution_id FROM trigger_fires ORDER BY scheduled_at")
    executions = query(db, "SELECT id, trigger_data FROM executions ORDER BY created_at")
    assert sorted(eid for _, eid in fires) == sorted(eid for eid, _ in executions)
    scheduled = [json.loads(data)["scheduled_at"] for _, data in executions]
    assert len(scheduled) == len(set(scheduled))
    missed = [at for at, _ in fires if last_fire < at <= restarted_at - 5_000]
    assert len(missed) <= 1
    # the limit held across both processes: never two executions of `busy` running at once
    spans = query(db, "SELECT started_at, ended_at FROM executions WHERE started_at IS NOT NULL ORDER BY started_at")
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end is None or end <= start
