"""A database that refuses writes, with real faults: a full tmpfs and an immutable file (chattr +i).

What the engine promises (issue 9): while the database refuses writes nothing read from a
plugin is dropped (the plugins wait on their pipes); once it takes writes again every line
is written, in order, and the run goes on; SIGINT / SIGTERM / SIGHUP and `execution cancel`
stop the run within kill grace + close grace with exit code 3, and what could not be
written is counted and recorded. The faults need root (mount, chattr): elsewhere these
tests are skipped, with the reason. Every mount is unmounted and every file made mutable
again, whatever happens.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow  # starts the real CLI or engine and its processes (--quick skips it)

CLI = str(Path(sys.executable).with_name("kestra-trio"))
KILL_GRACE = 1.0
CLOSE_GRACE = 3.0
#: start-up, the plugins' last lines and the final writes on a loaded 2-core machine
SLACK = 8.0
FAULT_LINE = "cannot write log lines to the database"

#: a plugin that counts the lines it got into its pipe and says how many when it ends
WRITER = """
import os, signal, sys
count_file, label, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
n = 0
def save(*_):
    with open(count_file, "w") as f:
        f.write(str(n))
    os._exit(0)
signal.signal(signal.SIGTERM, save)
sys.stderr.write(label + " starts\\n")
sys.stderr.flush()
while n < limit:
    os.write(1, (label + " padding-padding-padding line %d\\n" % n).encode())
    n += 1
save()
"""


# --------------------------------------------------------------------------- faults


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"needs root to {what}")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60)


def _unmount(path: Path) -> None:
    for _ in range(100):  # busy while a process of a failed test still holds a file there
        if _run("umount", str(path)).returncode == 0:
            return
        time.sleep(0.1)
    _run("umount", "-l", str(path))


class SmallDisk:
    """A tmpfs of `size` for the database; `grow()` ends the fault."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = path / "k.db"

    def grow(self) -> None:
        result = _run("mount", "-o", "remount,size=100m", str(self.path))
        assert result.returncode == 0, result.stderr

    def fill(self, leave: int) -> None:
        """Take all the free space but `leave` bytes (the database is already there)."""
        free = os.statvfs(self.path).f_bavail * os.statvfs(self.path).f_frsize
        with open(self.path / "filler", "wb") as filler:
            os.posix_fallocate(filler.fileno(), 0, max(0, free - leave))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    _need_root("mount a 3 MiB tmpfs (mount -t tmpfs -o size=3m)")
    mount = tmp_path / "disk"
    mount.mkdir()
    result = _run("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount))
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield SmallDisk(mount)
    finally:
        _unmount(mount)


class Immutable:
    """Makes files immutable (chattr +i) and always mutable again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.locked: list[Path] = []

    def lock(self, *paths: Path) -> None:
        for path in paths:
            result = _run("chattr", "+i", str(path))
            assert result.returncode == 0, result.stderr
            self.locked.append(path)

    def unlock(self) -> None:
        while self.locked:
            _run("chattr", "-i", str(self.locked.pop()))


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Immutable]:
    """A folder where `chattr +i` works: tmp_path if its filesystem has it, else a loop-mounted ext4."""
    _need_root("make the database file immutable (chattr +i)")
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    folder = tmp_path / "ro"
    folder.mkdir()
    probe = folder / "probe"
    probe.touch()
    mounted = False
    if _run("chattr", "+i", str(probe)).returncode == 0:
        _run("chattr", "-i", str(probe))
    else:  # e.g. /tmp on a tmpfs: an ext4 image on a loop device has it
        image = tmp_path / "ext4.img"
        with open(image, "wb") as fh:
            fh.truncate(64 * 1024 * 1024)
        made = _run("mkfs.ext4", "-q", "-F", str(image))
        probe.unlink()
        if made.returncode != 0 or _run("mount", "-o", "loop", str(image), str(folder)).returncode != 0:
            pytest.skip("chattr +i is not supported here and no ext4 loop mount could be made")
        mounted = True
    files = Immutable(folder)
    try:
        yield files
    finally:
        files.unlock()
        if mounted:
            _unmount(folder)


# --------------------------------------------------------------------------- the engine


class Engine:
    """`kestra-trio run` as a user starts it; stdout and stderr go to files read while it runs."""

    def __init__(self, tmp_path: Path, db: Path, workflow: str, *args: str) -> None:
        self.db = db
        path = tmp_path / "wf.yaml"
        path.write_text(textwrap.dedent(workflow))
        self.out_path, self.err_path = tmp_path / "out.txt", tmp_path / "err.txt"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [CLI, "run", str(path), "--db", str(db), "--kill-grace", f"{KILL_GRACE:g}",
                 "--close-grace", f"{CLOSE_GRACE:g}", *args],
                stdout=out, stderr=err, env={**os.environ, "NO_COLOR": "1"},
            )

    @property
    def stdout(self) -> str:
        return self.out_path.read_text()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    @property
    def execution_id(self) -> str:
        return wait_for(lambda: self.stdout.split()[1] if self.stdout.startswith("Execution ") else None)

    def wait_for_fault(self) -> None:
        """The engine said the database refuses writes, and it is still running."""
        wait_for(lambda: FAULT_LINE in self.stderr or self.proc.poll() is not None, timeout=120)
        assert self.proc.poll() is None, self.stderr
        assert "Traceback" not in self.stderr

    def stop_with(self, signum: int) -> float:
        """Send `signum`; the seconds until the engine exited."""
        started = time.monotonic()
        self.proc.send_signal(signum)
        return self.wait() - started

    def wait(self, timeout: float = 120) -> float:
        self.proc.wait(timeout=timeout)
        return time.monotonic()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    """Engines started by a test; killed (and so their plugins) if the test failed before their end."""
    started: list[Engine] = []
    yield started
    for engine in started:
        engine.kill()


def start(engines: list[Engine], *args, **kwargs) -> Engine:
    engine = Engine(*args, **kwargs)
    engines.append(engine)
    return engine


def wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def kt(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args, "--db", str(db)], capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"}
    )


def rows(db: Path, sql: str, *params) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()  # else the mount stays busy until the garbage collector runs


def entries_stored(db: Path) -> int:
    """Log entries committed so far (0 while the database is being created)."""
    try:
        return rows(db, "SELECT COUNT(*) FROM execution_logs")[0][0] if db.with_name(db.name + "-wal").exists() else 0
    except sqlite3.OperationalError:  # no table yet
        return 0


def plugin_lines(db: Path, task_id: str) -> list[str]:
    return [m for (m,) in rows(
        db, "SELECT message FROM execution_logs WHERE task_id = ? AND source LIKE 'plugin:%' "
        "AND json_extract(metadata, '$.stream') = 'stdout' ORDER BY id", task_id,
    )]


#: longer than any fault a test makes: a task waiting for the database is not timed out
LONG = "10m"


def writer_task(task_id: str, tmp_path: Path, limit: int = 10**9, timeout: str = LONG) -> str:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    count = tmp_path / f"{task_id}.count"
    return f"""
      - id: {task_id}
        type: core/shell.run
        timeout: {timeout}
        inputs: {{command: "exec {sys.executable} {script} {count} {task_id} {limit}"}}"""


def written(tmp_path: Path, task_id: str) -> int:
    """How many lines the writer got into its pipe (it may be killed between a write and its count)."""
    return int((tmp_path / f"{task_id}.count").read_text())


def plugin_processes(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if any(marker in part for part in process.info["cmdline"] or ()) and process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            continue
    return found


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# --------------------------------------------------------------------------- the tests


def test_a_full_disk_makes_the_plugins_wait_and_once_it_has_room_every_line_is_written_in_order(
    tmp_path: Path, small_disk: SmallDisk, engines: list[Engine]
) -> None:
    token = secrets.token_hex(4)  # tells this test's plugins from any other's
    tasks = "".join(
        f"""
      - id: {t}
        type: core/shell.run
        timeout: {LONG}
        inputs: {{command: "seq 1 25000 | sed 's/^/{t} {token} padding-padding line /'"}}"""
        for t in ("b1", "b2", "b3", "b4")
    )
    engine = start(engines, tmp_path, small_disk.db, f"id: full-disk\ntasks:{tasks}\n")
    engine.wait_for_fault()
    # 100,000 lines do not fit in what the engine may hold: a plugin is blocked on its pipe
    # (a `sed` of 25,000 lines would otherwise be long gone), and nothing is dropped
    assert plugin_processes(token)
    assert rows(small_disk.db, "SELECT state, log_entries_lost FROM executions") == [("RUNNING", 0)]
    small_disk.grow()
    engine.wait()
    assert engine.proc.returncode == 0, engine.stderr
    assert "work again" in engine.stderr and "Traceback" not in engine.stderr
    assert rows(small_disk.db, "SELECT state, log_entries_lost FROM executions") == [("SUCCESS", 0)]
    for task in ("b1", "b2", "b3", "b4"):
        assert plugin_lines(small_disk.db, task) == [f"{task} {token} padding-padding line {i}" for i in range(1, 25001)]


def test_sigterm_on_a_full_disk_exits_3_in_time_and_every_line_is_stored_or_counted(
    tmp_path: Path, small_disk: SmallDisk, engines: list[Engine]
) -> None:
    workflow = "id: never-room\ntasks:" + writer_task("w1", tmp_path) + writer_task("w2", tmp_path) + "\n"
    engine = start(engines, tmp_path, small_disk.db, workflow)
    engine.wait_for_fault()
    elapsed = engine.stop_with(signal.SIGTERM)
    assert engine.proc.returncode == 3, engine.stderr
    assert elapsed < KILL_GRACE + CLOSE_GRACE + SLACK
    err = engine.stderr
    assert "Stopping (received SIGTERM)" in err and "Traceback" not in err
    assert last_line(err).startswith("kestra-trio: error: database error (database or disk is full): ")
    assert last_line(err).endswith("it is recorded FAILED [DATABASE_ERROR]")
    # the disk never got room: the ballast kept space for the records of what was lost
    [(state, reason, lost)] = rows(small_disk.db, "SELECT state, reason_code, log_entries_lost FROM executions")
    assert (state, reason) == ("FAILED", "DATABASE_ERROR") and lost > 0
    assert f"log entries lost: {lost:,}" in engine.stdout
    gaps = rows(small_disk.db, "SELECT task_id, message, metadata FROM execution_logs WHERE json_extract("
                "metadata, '$.reason_code') = 'DATABASE_ERROR' AND json_extract(metadata, '$.lost_entries') > 0")
    assert sum(json.loads(m)["lost_entries"] for _, _, m in gaps) == lost
    for task in ("w1", "w2"):
        stored = plugin_lines(small_disk.db, task)
        assert stored == [f"{task} padding-padding-padding line {i}" for i in range(len(stored))]  # in order, no hole
        counted = sum(json.loads(m)["lost_entries"] for t, _, m in gaps if t == task)
        assert len(stored) + counted in (written(tmp_path, task), written(tmp_path, task) + 1)
        assert any("could not be written to the database and are lost" in msg for t, msg, _ in gaps if t == task)
    messages = [m for (m,) in rows(small_disk.db, "SELECT message FROM execution_logs WHERE source = 'scheduler'")]
    assert any(m.startswith("Execution failed in ") and "cancelled by user: received SIGTERM" in m for m in messages)
    # the readers say it too (and work on the full disk)
    execution_id = engine.execution_id
    logs = kt("execution", "logs", execution_id, "--level", "ERROR", db=small_disk.db)
    assert logs.returncode == 0 and "could not be written to the database and are lost" in logs.stdout
    assert f"note: {lost:,} log entries of execution {execution_id} could not be written" in logs.stderr
    inspect = kt("execution", "inspect", execution_id, db=small_disk.db)
    assert f"Lost entries  {lost:,} could not be written" in inspect.stdout and "DATABASE_ERROR" in inspect.stdout


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
def test_a_read_only_database_mid_run_a_stop_signal_exits_3_in_time(
    tmp_path: Path, immutable: Immutable, engines: list[Engine], signum: int
) -> None:
    db = immutable.folder / "k.db"
    engine = start(engines, tmp_path, db, "id: read-only\ntasks:" + writer_task("w", tmp_path) + "\n")
    wait_for(lambda: entries_stored(db) > 500)
    immutable.lock(db, db.with_name("k.db-wal"))
    engine.wait_for_fault()
    elapsed = engine.stop_with(signum)
    assert engine.proc.returncode == 3, engine.stderr
    assert elapsed < KILL_GRACE + CLOSE_GRACE + SLACK
    err = engine.stderr
    assert f"Stopping (received {signal.Signals(signum).name})" in err and "Traceback" not in err
    assert "its final state could not be stored either" in last_line(err) and "ENGINE_LOST" in last_line(err)
    assert not plugin_processes(str(tmp_path / "w.count"))
    immutable.unlock()
    assert rows(db, "SELECT state FROM executions") == [("RUNNING",)]
    # nothing is silent: the next run on this host says what happened to it
    (tmp_path / "later").mkdir()
    later = start(engines, tmp_path / "later", db,
                  "id: later\ntasks:\n  - id: t\n    type: core/shell.run\n    inputs: {command: 'true'}\n")
    later.wait()
    assert later.proc.returncode == 0, later.stderr
    assert rows(db, "SELECT reason_code FROM executions WHERE workflow_id = 'read-only'") == [("ENGINE_LOST",)]


def test_a_read_only_database_that_becomes_writable_again_loses_nothing(
    tmp_path: Path, immutable: Immutable, engines: list[Engine]
) -> None:
    db = immutable.folder / "k.db"
    engine = start(engines, tmp_path, db, "id: back\ntasks:" + writer_task("w", tmp_path, limit=100_000) + "\n")
    wait_for(lambda: entries_stored(db) > 500)
    immutable.lock(db, db.with_name("k.db-wal"))
    engine.wait_for_fault()
    wait_for(lambda: plugin_processes(str(tmp_path / "w.count")))  # blocked on its pipe, not dropped
    immutable.unlock()
    engine.wait()
    assert engine.proc.returncode == 0, engine.stderr
    assert plugin_lines(db, "w") == [f"w padding-padding-padding line {i}" for i in range(100_000)]
    assert rows(db, "SELECT state, log_entries_lost FROM executions") == [("SUCCESS", 0)]


def test_execution_cancel_stops_a_run_whose_database_refuses_writes(
    tmp_path: Path, immutable: Immutable, engines: list[Engine]
) -> None:
    db = immutable.folder / "k.db"
    engine = start(engines, tmp_path, db, "id: cancel-me\ntasks:" + writer_task("w", tmp_path) + "\n")
    execution_id = engine.execution_id
    wait_for(lambda: entries_stored(db) > 500)
    immutable.lock(db, db.with_name("k.db-wal"))
    engine.wait_for_fault()
    started = time.monotonic()
    cancel = kt("execution", "cancel", execution_id, "--wait", "0", db=db)
    assert cancel.returncode == 0, cancel.stderr
    assert f"Cancel requested for execution {execution_id} (the database refuses writes: its engine" in cancel.stdout
    engine.wait()
    assert time.monotonic() - started < KILL_GRACE + CLOSE_GRACE + SLACK
    assert engine.proc.returncode == 3, engine.stderr
    assert "Stopping (received SIGTERM)" in engine.stderr


def test_a_task_timeout_fires_while_its_lines_wait_and_keeps_its_stderr_tail(
    tmp_path: Path, small_disk: SmallDisk, engines: list[Engine]
) -> None:
    created = kt("db", "migrate", db=small_disk.db)
    assert created.returncode == 0, created.stderr
    small_disk.fill(leave=256 * 1024)  # a few thousand lines, then the disk is full
    engine = start(engines, tmp_path, small_disk.db,
                   "id: slow\ntasks:" + writer_task("w", tmp_path, timeout="3s") + "\n")
    engine.wait_for_fault()
    marker = str(tmp_path / "w.count")
    wait_for(lambda: not plugin_processes(marker), timeout=3 + KILL_GRACE + SLACK)  # killed at its timeout...
    assert engine.proc.poll() is None  # ...while the engine waits for the database with its lines
    small_disk.grow()
    engine.wait()
    assert engine.proc.returncode == 1, engine.stderr
    [(state, reason, error)] = rows(small_disk.db, "SELECT state, reason_code, error FROM task_runs")
    assert (state, reason) == ("FAILED", "TIMEOUT")
    assert json.loads(error)["stderr_tail"] == ["w starts"]
    stored = plugin_lines(small_disk.db, "w")
    assert stored == [f"w padding-padding-padding line {i}" for i in range(len(stored))]
    assert len(stored) in (written(tmp_path, "w"), written(tmp_path, "w") + 1)  # all of them
    assert rows(small_disk.db, "SELECT log_entries_lost FROM executions") == [(0,)]


def test_an_unexpected_database_error_is_database_error_exit_3_not_internal_error(tmp_path: Path) -> None:
    # a real fault without root: the database itself rejects the task's SUCCESS (a trigger)
    db = tmp_path / "k.db"
    assert kt("db", "migrate", db=db).returncode == 0
    with sqlite3.connect(db) as raw:
        raw.execute(
            "CREATE TRIGGER no_success BEFORE UPDATE OF state ON task_runs WHEN NEW.state = 'SUCCESS' "
            "BEGIN SELECT RAISE(ABORT, 'the disk controller said no'); END"
        )
    raw.close()
    path = tmp_path / "wf.yaml"
    path.write_text("id: doomed\ntasks:\n  - id: t\n    type: core/shell.run\n    inputs: {command: 'echo hi'}\n")
    result = kt("run", str(path), db=db)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert "[DATABASE_ERROR]" in result.stdout and "INTERNAL_ERROR" not in result.stdout + result.stderr
    assert rows(db, "SELECT state, reason_code, message FROM executions") == [
        ("FAILED", "DATABASE_ERROR", "database error: the disk controller said no")
    ]
    assert last_line(result.stderr) == (
        "kestra-trio: error: database error (the disk controller said no) during execution "
        f"{result.stdout.split()[1]}; it is recorded FAILED [DATABASE_ERROR]"
    )
