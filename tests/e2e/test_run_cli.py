"""`kestra-trio run` through the installed entry point, as a user runs it."""

from __future__ import annotations

import json
import re
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow  # starts the real CLI or engine and its processes (--quick skips it)

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("kestra-trio"))


def kt(*args, db, env=None, timeout=60, **kwargs):
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [CLI, *args, "--db", str(db)], capture_output=True, text=True, timeout=timeout, env=full_env, **kwargs
    )


def write(tmp_path, text, name="wf.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def db_rows(db, sql, *params):
    """The rows of a query on the database file; a missing file or any SQLite error fails the test."""
    assert Path(db).exists(), f"{db} does not exist"
    with closing(sqlite3.connect(db, timeout=10)) as conn:
        return conn.execute(sql, params).fetchall()


def rows_once_created(db, sql, *params):
    """`db_rows` while an engine is starting: nothing yet until the file and its schema exist."""
    if not Path(db).exists():
        return []
    with closing(sqlite3.connect(db, timeout=10)) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'executions'").fetchall():
            return []
    return db_rows(db, sql, *params)


def test_examples_run_from_any_directory(tmp_path):
    db = tmp_path / "k.db"
    result = kt("run", str(ROOT / "examples" / "hello.yaml"), "--input", "name=newcomer", db=db, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "SUCCESS" in result.stdout
    execution_id = result.stdout.split()[1]
    assert db_rows(db, "SELECT state FROM executions WHERE id = ?", execution_id) == [("SUCCESS",)]
    messages = [m for (m,) in db_rows(db, "SELECT message FROM execution_logs WHERE execution_id = ?", execution_id)]
    assert "hello, newcomer!" in messages and "hello again, newcomer" in messages


def test_failed_workflow_exits_1_and_json_reports_every_task(tmp_path):
    db = tmp_path / "k.db"
    result = kt("run", str(ROOT / "examples" / "failing.yaml"), "--json", db=db)
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert payload["state"] == "FAILED" and payload["failed_task_id"] == "boom"
    assert {t: v["state"] for t, v in payload["tasks"].items()} == {
        "boom": "FAILED",
        "after-boom": "CANCELLED",
        "other": "SUCCESS",
    }
    assert payload["tasks"]["boom"]["error"]["exit_code"] == 3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--input", "nope=1"], "nope"),
        (["--max-parallel", "0"], "--max-parallel"),
        (["--max-parallel", "1.9"], "expected a whole number, got '1.9'"),  # not rounded to 2
        (["--max-parallel", "0x8"], "expected a whole number, got '0x8'"),
        (["--kill-grace", "\u0661"], "expected a number, got '\u0661'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_create_nothing(tmp_path, args, needle):
    db = tmp_path / "k.db"
    result = kt("run", str(ROOT / "examples" / "hello.yaml"), *args, db=db)
    assert result.returncode == 2
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert not db.exists()  # nothing was created


def test_invalid_workflow_prints_diagnostics_and_exits_2(tmp_path):
    db = tmp_path / "k.db"
    path = write(
        tmp_path,
        """
        id: bad
        tasks:
          - id: a
            type: core/shell.run
            needs: [ghost]
            inputs: {command: "echo"}
        """,
    )
    result = kt("run", str(path), db=db)
    assert result.returncode == 2
    assert "ghost" in result.stderr and "Traceback" not in result.stderr
    assert not db.exists()  # nothing was created


def _start_long_run(tmp_path, db, *, command="echo started; sleep 100 & sleep 100", kill_grace="1"):
    path = write(
        tmp_path,
        f"""
        id: long
        tasks:
          - id: sleeper
            type: core/shell.run
            timeout: 120s
            inputs: {{command: "{command}"}}
          - id: later
            type: core/shell.run
            needs: [sleeper]
            inputs: {{command: "echo never"}}
        """,
    )
    proc = subprocess.Popen(
        [CLI, "run", str(path), "--db", str(db), "--kill-grace", kill_grace],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    pid = wait_for(lambda: rows_once_created(db, "SELECT pid FROM task_attempts WHERE state = 'RUNNING'"))[0][0]
    wait_for(lambda: db_rows(db, "SELECT 1 FROM execution_logs WHERE message = 'started'"))  # the plugin is running
    return proc, pid


def _group_alive(pgid):
    for p in psutil.process_iter(["status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def test_ctrl_c_cancels_the_execution_and_exits_130(tmp_path):
    db = tmp_path / "k.db"
    proc, pgid = _start_long_run(tmp_path, db)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert db_rows(db, "SELECT state, cancelled_by FROM executions") == [("CANCELLED", "user")]
    assert dict(db_rows(db, "SELECT task_id, state FROM task_runs")) == {"sleeper": "CANCELLED", "later": "CANCELLED"}
    assert not _group_alive(pgid)
    assert db_rows(db, "SELECT message FROM execution_logs WHERE message = 'started'") == [("started",)]


def test_sigterm_cancels_and_exits_143(tmp_path):
    db = tmp_path / "k.db"
    proc, pgid = _start_long_run(tmp_path, db)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert db_rows(db, "SELECT state FROM executions") == [("CANCELLED",)]
    assert not _group_alive(pgid)


def test_sighup_when_the_terminal_closes_cancels_and_exits_129(tmp_path):
    db = tmp_path / "k.db"
    proc, pgid = _start_long_run(tmp_path, db)
    proc.send_signal(signal.SIGHUP)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 129, err
    assert db_rows(db, "SELECT state, reason_code, message FROM executions") == [
        ("CANCELLED", "EXECUTION_CANCELLED", "cancelled by user: received SIGHUP")
    ]
    assert not _group_alive(pgid)
    assert db_rows(db, "SELECT message FROM execution_logs WHERE message = 'started'") == [("started",)]


def test_a_second_ctrl_c_kills_a_task_that_ignores_sigterm_without_waiting_the_grace(tmp_path):
    db = tmp_path / "k.db"
    stubborn = "trap 'echo got TERM' TERM; echo started; while true; do sleep 0.1; done"
    proc, pgid = _start_long_run(tmp_path, db, command=stubborn, kill_grace="600")
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: db_rows(db, "SELECT 1 FROM execution_logs WHERE message = 'got TERM'"))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)  # a 600 s grace would time out here
    assert proc.returncode == 130, err
    assert "Stopping (received SIGINT): running tasks get SIGTERM, then SIGKILL after 600s; Ctrl+C skips the wait." in err
    assert "Stopping now: running tasks get SIGKILL." in err
    [(message, signal_sent)] = db_rows(db, "SELECT message, signal FROM task_attempts WHERE task_id = 'sleeper'")
    assert signal_sent == "SIGKILL"
    assert "sent SIGTERM, then SIGKILL (a second stop signal) to process group" in message
    assert not _group_alive(pgid)
    forced = db_rows(db, "SELECT level, source FROM execution_logs WHERE message LIKE 'Received SIGINT again%'")
    assert forced == [("WARN", "scheduler")]


def test_sigkill_of_the_engine_leaves_no_plugin_process(tmp_path):
    db = tmp_path / "k.db"
    proc, pgid = _start_long_run(tmp_path, db)
    proc.kill()
    proc.communicate(timeout=60)
    wait_for(lambda: not _group_alive(pgid), timeout=30)
    # the next engine start marks the lost execution instead of leaving it RUNNING forever
    result = kt("run", str(ROOT / "examples" / "hello.yaml"), db=db)
    assert result.returncode == 0
    assert ("FAILED", "ENGINE_LOST") in db_rows(db, "SELECT state, reason_code FROM executions")
    # and `execution logs` says so, as its last line
    [(lost_id,)] = db_rows(db, "SELECT id FROM executions WHERE reason_code = 'ENGINE_LOST'")
    logs = kt("execution", "logs", lost_id, db=db).stdout.splitlines()
    assert "[ERROR] [scheduler] Execution failed: the engine process (pid " in logs[-1]
    assert "[ENGINE_LOST]; 2 unfinished task(s) marked FAILED: " in logs[-1]
    # every record is closed: tasks and their attempts end, and the audit says why
    unfinished = db_rows(db, "SELECT task_id FROM task_runs WHERE execution_id = ? AND ended_at IS NULL", lost_id)
    assert unfinished == []
    attempts = db_rows(db, "SELECT state, reason_code FROM task_attempts WHERE execution_id = ?", lost_id)
    assert attempts and set(attempts) == {("FAILED", "ENGINE_LOST")}
    [(failed,)] = db_rows(db, "SELECT metadata FROM execution_audit_events WHERE execution_id = ? AND event_type = 'FAILED'", lost_id)
    assert json.loads(failed)["reason_code"] == "ENGINE_LOST" and json.loads(failed)["failed_task_id"]


def test_engine_warns_when_log_tables_outgrow_the_threshold(tmp_path):
    db = tmp_path / "k.db"
    kt("run", str(ROOT / "examples" / "hello.yaml"), db=db)
    result = kt("run", str(ROOT / "examples" / "hello.yaml"), db=db, env={"KESTRA_TRIO_SIZE_WARNING_BYTES": "1000"})
    assert result.returncode == 0
    assert "warning: execution_logs is" in result.stderr and "KESTRA_TRIO_LOG_RETENTION_DAYS" in result.stderr


def test_engine_start_deletes_expired_logs(tmp_path):
    db = tmp_path / "k.db"
    kt("run", str(ROOT / "examples" / "hello.yaml"), db=db)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO execution_logs (execution_id, task_id, timestamp, level, source, message) "
            "VALUES ('old', NULL, 1000, 'INFO', 'scheduler', 'ancient')"
        )
    result = kt("run", str(ROOT / "examples" / "hello.yaml"), db=db, env={"KESTRA_TRIO_LOG_RETENTION_DAYS": "1"})
    assert result.returncode == 0
    assert db_rows(db, "SELECT COUNT(*) FROM execution_logs WHERE message = 'ancient'") == [(0,)]


@pytest.mark.parametrize(
    ("env", "args", "needle"),
    [
        ({"KESTRA_TRIO_LOG_RETENTION_DAYS": "99999999999999999999"}, [], "at most 3650 days"),
        ({"KESTRA_TRIO_MAX_PARALLEL": "many"}, [], "KESTRA_TRIO_MAX_PARALLEL"),
        ({}, ["--kill-grace", "nan"], "--kill-grace"),
    ],
)
def test_bad_settings_exit_2_before_anything_is_created(tmp_path, env, args, needle):
    db = tmp_path / "k.db"
    result = kt("run", str(ROOT / "examples" / "hello.yaml"), *args, db=db, env=env)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert not db.exists()  # nothing was created


def test_absurd_durations_are_validation_errors_not_crashes(tmp_path):
    db = tmp_path / "k.db"
    path = write(
        tmp_path,
        """
        id: absurd
        timeout: 1.0e+300
        tasks:
          - id: a
            type: core/shell.run
            timeout: 99999999999999999999d
            retry: {max: 2, delay: 0.0001}
            inputs: {command: "echo hi"}
        """,
    )
    result = kt("run", str(path), db=db)
    assert result.returncode == 2
    assert "timeout: duration" in result.stderr and "too long" in result.stderr
    assert "retry.delay: must be at least 1ms" in result.stderr
    assert "internal error" not in result.stderr


def _run_on_a_terminal(args, *, rows=24, cols=100, timeout=60):
    """Run the CLI with a pseudo-terminal as stdout (what a user's shell gives it)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen([CLI, *args], stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its side
            break
        if not data:
            break
        chunks.append(data)
        assert time.monotonic() < deadline, "run on a terminal did not finish"
    os.close(master)
    code = proc.wait(timeout=timeout)
    with proc.stderr:
        err = proc.stderr.read().decode()
    return code, b"".join(chunks).decode("utf-8", "replace"), err


def test_run_on_a_terminal_draws_a_live_table_that_fits_the_screen(tmp_path):
    tasks = "\n".join(
        f"  - id: t{i:03d}\n    type: core/shell.run\n    inputs:\n      command: 'true'" for i in range(120)
    )
    wf = tmp_path / "many.yaml"
    wf.write_text(f"id: many\ntasks:\n{tasks}\n")
    code, screen, err = _run_on_a_terminal(["run", str(wf), "--db", str(tmp_path / "k.db")], rows=24)
    assert code == 0, err
    assert "Traceback" not in err
    assert "\x1b[" in screen  # drawn in place with terminal control sequences
    assert "120 SUCCESS" in screen
    shown = [int(n) for n in re.findall(r"showing (\d+) of 120 tasks", screen)]
    assert shown and max(shown) <= 18  # 24 rows less the header, caption and summary: no frame scrolls
    assert screen.rsplit("showing", 1)[1].startswith(" 18 of 120 tasks)")  # the last frame is the final one
    assert re.search(r"Execution [0-9a-f]{16} SUCCESS in .* - 120 tasks: 120 SUCCESS", screen)


def test_a_value_the_os_cannot_exec_fails_its_task_and_the_rest_of_the_run_goes_on(tmp_path):
    # a NUL byte reaching argv through another task's outputs used to crash the engine
    wf = write(
        tmp_path,
        """
        id: nul-chain
        tasks:
          - id: produce
            type: core/python.script
            inputs:
              script: "outputs['x'] = 'a' + chr(0) + 'b'"
          - id: consume
            type: core/shell.run
            needs: [produce]
            inputs: {command: "echo {{ tasks.produce.outputs.x }}"}
          - id: independent
            type: core/shell.run
            inputs: {command: "sleep 0.5; echo independent done"}
        """,
    )
    db = tmp_path / "k.db"
    result = kt("run", str(wf), "--json", db=db)
    assert result.returncode == 1, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    payload = json.loads(result.stdout)
    assert payload["state"] == "FAILED" and payload["failed_task_id"] == "consume"
    tasks = payload["tasks"]
    assert tasks["independent"]["state"] == "SUCCESS"
    assert tasks["consume"]["reason_code"] == "INVALID_INPUT"
    assert "argument 2 contains a NUL byte" in tasks["consume"]["error"]["message"]


def test_permissions_without_restricted_mode_are_not_silently_trusted(tmp_path):
    wf = write(
        tmp_path,
        """
        id: perm
        permissions:
          network: [example.com]
        tasks:
          - id: a
            type: core/shell.run
            inputs: {command: "true"}
        """,
    )
    result = kt("run", str(wf), db=tmp_path / "k.db")
    assert result.returncode == 0, result.stderr
    assert "warning: " in result.stderr and "`permissions` are enforced only with security: restricted" in result.stderr


def test_a_plugins_folder_that_does_not_exist_is_reported(tmp_path):
    result = kt("run", str(ROOT / "examples" / "hello.yaml"), "--plugins", "my-plugns", db=tmp_path / "k.db", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (2, "kestra-trio: error: --plugins my-plugns: no such directory\n")
    assert not (tmp_path / "k.db").exists()


def test_the_follow_hint_repeats_db_so_it_works_when_pasted_in_another_folder(tmp_path):
    folder = tmp_path / "a dir"
    folder.mkdir()
    result = kt("run", str(ROOT / "examples" / "hello.yaml"), db=Path("rel.db"), cwd=folder)
    assert result.returncode == 0, result.stderr
    hint = re.search(r"Follow it with: (.+)$", result.stdout.splitlines()[0]).group(1)
    argv = shlex.split(hint)
    assert argv[-2:] == ["--db", str(folder / "rel.db")]  # absolute, quoted for the shell
    follow = subprocess.run([CLI, *argv[1:]], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={**os.environ, "NO_COLOR": "1"})
    assert follow.returncode == 0 and "hello" in follow.stdout, follow.stderr


def test_follow_into_a_closed_pipe_exits_while_the_execution_is_quiet(tmp_path):
    # `execution logs --follow | head -n 1` on a task that prints nothing for minutes
    db = tmp_path / "k.db"
    proc, _ = _start_long_run(tmp_path, db)
    try:
        [(execution_id,)] = db_rows(db, "SELECT id FROM executions")
        follow = subprocess.Popen([CLI, "execution", "logs", execution_id, "--follow", "--db", str(db)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})
        assert follow.stdout.readline()  # what exists is printed at once
        follow.stdout.close()  # the reader goes away; nothing new will be written for 100 s
        assert follow.wait(timeout=60) == 0  # not when the execution ends (100 s)
        assert follow.stderr.read() == b""
        follow.stderr.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def test_a_failed_audit_insert_keeps_the_state_change_and_says_so(tmp_path):
    """The rule: a database write failure is reported on stderr and the execution goes on."""
    db = tmp_path / "k.db"
    assert kt("run", str(ROOT / "examples" / "hello.yaml"), db=db).returncode == 0
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "CREATE TRIGGER audit_full BEFORE INSERT ON execution_audit_events WHEN NEW.event_type = 'COMPLETED' "
            "BEGIN SELECT RAISE(ABORT, 'audit table full (simulated)'); END"
        )
    result = kt("run", str(ROOT / "examples" / "hello.yaml"), "--json", db=db)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[1:] == [
        "kestra-trio: audit write failed (the state change was kept): audit table full (simulated)"
    ]
    execution_id = json.loads(result.stdout)["execution_id"]
    assert db_rows(db, "SELECT state FROM executions WHERE id = ?", execution_id) == [("SUCCESS",)]
    events = db_rows(db, "SELECT event_type, metadata FROM execution_audit_events WHERE execution_id = ? ORDER BY id",
                     execution_id)
    # a change's audit events go in together: neither COMPLETED nor its STATE_CHANGE is there, the rest is
    assert "COMPLETED" not in [kind for kind, _ in events]
    changes = [json.loads(metadata) for kind, metadata in events if kind == "STATE_CHANGE"]
    assert [c["to_state"] for c in changes if c["entity"] == "execution"] == ["RUNNING"]
    assert [c["to_state"] for c in changes if c["entity"] == "task"] == ["RUNNING", "SUCCESS"] * 2


def test_default_task_timeout_comes_from_the_environment(tmp_path):
    """No default per-task timeout; KESTRA_TRIO_DEFAULT_TASK_TIMEOUT sets one; a bad value is
    one line, exit 2, and nothing is created."""
    db = tmp_path / "kestra.db"
    wf = write(tmp_path, """
        id: slowish
        tasks:
          - id: nap
            type: core/shell.run
            inputs: {command: sleep 5}
          - id: quick
            type: core/shell.run
            timeout: 10s
            inputs: {command: "true"}
    """)
    bad = kt("run", str(wf), db=db, env={"KESTRA_TRIO_DEFAULT_TASK_TIMEOUT": "soon"})
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.strip().splitlines()[-1].endswith(
        "KESTRA_TRIO_DEFAULT_TASK_TIMEOUT must be a duration such as 500ms, 30s, 5m, 2h, 1d, got 'soon'"
    )
    assert "Traceback" not in bad.stderr and db_rows(db, "SELECT id FROM executions") == []
    result = kt("run", str(wf), "--json", db=db, env={"KESTRA_TRIO_DEFAULT_TASK_TIMEOUT": "300ms"})
    assert result.returncode == 1, result.stderr
    timeouts = dict(db_rows(db, "SELECT task_id, timeout_ms FROM task_runs"))
    assert timeouts == {"nap": 300, "quick": 10_000}  # a task's own timeout wins
    assert db_rows(db, "SELECT reason_code FROM task_runs WHERE task_id='nap'") == [("TIMEOUT",)]


def test_a_secret_straddling_the_line_length_cut_is_not_stored_in_part(tmp_path):
    # QA's case: lines just over the 64 KiB line limit, the secret starting 1..11 bytes before the cut
    script = tmp_path / "cut.py"
    script.write_text(
        "import os, sys\n"
        "t = os.environ['T']\n"
        "for k in range(1, 12):\n"
        "    sys.stdout.write('a' * (65536 - k) + t + '\\n')\n"
        "    sys.stderr.write('b' * (65536 - k) + t + '\\n')\n"
    )
    wf = write(tmp_path, f"""
        id: sec3
        tasks:
          - id: cut2
            type: core/shell.run
            inputs:
              command: {shlex.quote(sys.executable)} {shlex.quote(str(script))}
              env: {{T: "{{{{ secrets.TOK }}}}"}}
    """)
    db = tmp_path / "sec3.db"
    secret = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    result = kt("run", str(wf), db=db, env={"KESTRA_TRIO_SECRET_TOK": secret})
    assert result.returncode == 0, result.stderr
    messages = [m for (m,) in db_rows(db, "SELECT message FROM execution_logs WHERE source LIKE 'plugin%'")]
    cut = [m for m in messages if "…[line truncated" in m]
    assert len(cut) == 22
    for message in cut:
        head, marker = message.rsplit(" …[line truncated: ", 1)
        assert head.endswith("***SECRET***") and head.rstrip("*SECRT").strip("ab") == "", message[-80:]
        assert "A" not in head and re.fullmatch(r"\d+ bytes dropped\]", marker)
