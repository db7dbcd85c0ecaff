"""`kestra-trio run` on the service root: a signal while another stop is under way skips the grace."""

from __future__ import annotations

import signal
import subprocess

import pytest
from test_run_cli import CLI, _group_alive, _start_long_run, db_rows, wait_for

pytestmark = pytest.mark.slow  # starts the real CLI or engine and its processes (--quick skips it)


def test_ctrl_c_while_a_cancel_is_carried_out_kills_at_once(tmp_path):
    db = tmp_path / "k.db"
    stubborn = "trap 'echo got TERM' TERM; echo started; while true; do sleep 0.1; done"
    proc, pgid = _start_long_run(tmp_path, db, command=stubborn, kill_grace="600")
    [(execution_id,)] = wait_for(lambda: db_rows(db, "SELECT id FROM executions"))
    cancel = subprocess.run([CLI, "execution", "cancel", execution_id, "--wait", "0", "--reason", "wrong input",
                             "--db", str(db)], capture_output=True, text=True, timeout=60)
    assert cancel.returncode == 0, cancel.stderr
    wait_for(lambda: db_rows(db, "SELECT 1 FROM execution_logs WHERE message = 'got TERM'"))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)  # a 600 s grace would time out here
    assert proc.returncode == 1, err  # the execution was cancelled from another terminal
    assert db_rows(db, "SELECT state, message FROM executions") == [("CANCELLED", "cancelled by user: wrong input")]
    forced = db_rows(db, "SELECT message FROM execution_logs WHERE message LIKE 'Received SIGINT%'")
    assert forced == [("Received SIGINT while stopping (wrong input): killing running tasks now (SIGKILL, no grace period)",)]
    [(signal_sent,)] = db_rows(db, "SELECT signal FROM task_attempts WHERE task_id = 'sleeper'")
    assert signal_sent == "SIGKILL"
    assert not _group_alive(pgid)
