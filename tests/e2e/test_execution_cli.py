"""`kestra-trio execution logs | inspect | list | cancel`, run as the installed entry point.

The database is built through the real storage API (tests/factories.py); `--follow` and
`cancel` are exercised against other processes that write to the same file while we read.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import trio

TESTS = Path(__file__).resolve().parents[1]
from factories import T0, ExecutionFactory, simple_success, task  # tests/ is on sys.path (pyproject)
from kestra_trio.observability.records import now_ms
from kestra_trio.storage.db import open_database  # noqa: E402

pytestmark = pytest.mark.slow  # starts the real CLI or engine and its processes (--quick skips it)

KT = str(Path(sys.executable).with_name("kestra-trio"))
ROOT = TESTS.parent
ENV = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "KESTRA_TRIO_DB")}
ENV["PYTHONPATH"] = str(TESTS)
NOT_FOUND = "Execution not found: {}\n"
LOST = (
    "kestra-trio: the engine running execution {} (pid {}) is gone; "
    "the execution will be marked FAILED (ENGINE_LOST) when kestra-trio next runs\n"
)
DEAD_PID = 2**22 + 12345  # above the default pid_max (2**22): never a live process
HOSTILE = "[/x] [bold]b[/bold] \x1b[31mred\x1b[0m a\rb nul\x00 end"
HOSTILE_SHOWN = "[/x] [bold]b[/bold] \\x1b[31mred\\x1b[0m a\\rb nul\\x00 end"


def kt(*args: str, db: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    argv = [KT, "execution", *args]
    if db is not None:
        argv += ["--db", str(db)]
    return subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=timeout, cwd=ROOT)


async def _build(path: Path) -> None:
    async with open_database(path) as db:
        await simple_success(db, "ex-success")

        ex = ExecutionFactory(db, "ex-failed", workflow_id="etl")
        await ex.create([task("fetch", max_attempts=2), task("parse", needs=["fetch"])])
        await ex.start(0)
        await ex.start_task("fetch", start=50, inputs={"url": "https://example.com/" + "x" * 300})
        await ex.retry_task("fetch", attempt_start=50, end=1050)
        await ex.start_task("fetch", start=2050, attempt=2)
        await ex.end_task("fetch", "SUCCESS", end=3000, attempt=2, attempt_start=2050, task_start=50,
                          outputs={"status": 200})
        await ex.fail_task("parse", start=3100, end=3400, exit_code=2, message="parse failed",
                           stderr_tail=["Traceback (most recent call last):", "ValueError: bad json"],
                           inputs={"token": "***SECRET***"})
        await ex.logs([
            (60, "INFO", "fetch", "GET https://example.com"),
            (1000, "ERROR", "fetch", "connection reset"),
            (3150, "INFO", "parse", HOSTILE),
            (3200, "ERROR", "parse", "line one\nline two"),
            (3200, "WARN", "parse", "same timestamp, later id"),
            (3300, "INFO", "parse", "worker says", "worker"),
        ])
        await ex.finish("FAILED", at=3500, message="task parse failed", failed_task_id="parse")

        ex = ExecutionFactory(db, "ex-nologs")
        await ex.create([task("a")])
        await ex.start(0)
        await ex.run_task("a", start=0, end=10)
        await ex.finish("SUCCESS", at=20)

        recent = now_ms() - 3 * 3600_000  # timestamps near now, for --since
        ex = ExecutionFactory(db, "ex-since", t0=recent)
        await ex.create([task("a")], created_at=T0 - 1000)  # list order must not depend on today's date
        await ex.start(0)
        await ex.logs([(0, "INFO", "a", "three hours ago"), (3 * 3600_000 - 10_000, "INFO", "a", "ten seconds ago")])

        ex = ExecutionFactory(db, "ex-stuck", workflow_id="stuck")  # RUNNING, engine gone
        await ex.create([task("a")], engine_pid=DEAD_PID, engine_host=socket.gethostname())
        await ex.start(0)
        await ex.start_task("a", start=10)
        await ex.logs([(20, "INFO", "a", "still working")])

        ex = ExecutionFactory(db, "ex-many")
        await ex.create([task("a")])
        await ex.start(0)
        await ex.logs([(i, "INFO", "a", f"line {i}") for i in range(5000)])
        await ex.finish("FAILED", at=6000)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "kestra.db"
    trio.run(_build, path)
    return path


HOSTILE_ID = "ex-\x1b[31mhostile"


async def _build_more(path: Path) -> None:
    async with open_database(path) as db:
        # ids that share prefixes: fc7f (two), abcd (seven)
        for execution_id in ["fc7f0001aaaa", "fc7f0002bbbb", *(f"abcd{n:04d}" for n in range(1, 8)), HOSTILE_ID]:
            ex = ExecutionFactory(db, execution_id)
            await ex.create([task("a")])
            await ex.start(0)
            await ex.run_task("a", start=0, end=10)
            await ex.finish("SUCCESS", at=20)
        # RUNNING, with an engine that is alive (this test process) / on another host (pid dead here)
        for execution_id, pid, host in [("ex-live", os.getpid(), socket.gethostname()),
                                        ("ex-remote", DEAD_PID, "elsewhere.invalid")]:
            ex = ExecutionFactory(db, execution_id)
            await ex.create([task("a")], engine_pid=pid, engine_host=host)
            await ex.start(0)
            await ex.start_task("a", start=10)
            await ex.logs([(20, "INFO", "a", "still working")])
        ex = ExecutionFactory(db, "ex-colours")  # what pytest and pip print when told to use colour
        await ex.create([task("a")])
        await ex.start(0)
        await ex.run_task("a", start=0, end=10)
        await ex.logs([(1, "INFO", "a", PYTEST_DOTS), (2, "INFO", "a", PROGRESS)])
        await ex.finish("SUCCESS", at=20)


PYTEST_DOTS = "tests/test_x.py \x1b[32m.\x1b[0m\x1b[32m.\x1b[0m\x1b[31mF\x1b[0m \x1b[4m[100%]\x1b[0m"
PROGRESS = "Downloading  10%\r\x1b[1mDownloading  55%\rDownloading 100%\x1b[0m\r"  # ends as CRLF output does


@pytest.fixture(scope="module")
def more_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prefix clashes, a hostile id and running executions whose engine is alive or remote."""
    path = tmp_path_factory.mktemp("cli-more") / "kestra.db"
    trio.run(_build_more, path)
    return path


# --------------------------------------------------------------------------- logs


def test_logs_text(db: Path) -> None:
    result = kt("logs", "ex-failed", db=db)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == (
        "[2026-11-21T10:15:30.060Z] [INFO] [plugin:core/shell.run] GET https://example.com\n"
        "[2026-11-21T10:15:31.000Z] [ERROR] [plugin:core/shell.run] connection reset\n"
        f"[2026-11-21T10:15:33.150Z] [INFO] [plugin:core/shell.run] {HOSTILE_SHOWN}\n"
        "[2026-11-21T10:15:33.200Z] [ERROR] [plugin:core/shell.run] line one\n"
        "                                                           line two\n"
        "[2026-11-21T10:15:33.200Z] [WARN] [plugin:core/shell.run] same timestamp, later id\n"
        "[2026-11-21T10:15:33.300Z] [INFO] [worker] worker says\n"
    )
    assert "\x1b" not in result.stdout and "\r" not in result.stdout and "\x00" not in result.stdout


def test_logs_filters(db: Path) -> None:
    def messages(*args: str) -> list[str]:
        result = kt("logs", "ex-failed", "--jsonl", *args, db=db)
        assert result.returncode == 0, result.stderr
        return [json.loads(line)["message"] for line in result.stdout.splitlines()]

    assert messages("--task", "fetch") == ["GET https://example.com", "connection reset"]
    assert messages("--level", "ERROR") == ["connection reset", "line one\nline two"]
    assert messages("--level", "warning,error") == ["connection reset", "line one\nline two", "same timestamp, later id"]
    assert messages("--source", "worker") == ["worker says"]
    assert messages("--source", "plugin", "--task", "parse", "--level", "INFO") == [HOSTILE]
    since = kt("logs", "ex-since", "--since", "1h", db=db)
    assert since.returncode == 0 and since.stdout.endswith("[INFO] [plugin:core/shell.run] ten seconds ago\n")
    assert len(since.stdout.splitlines()) == 1
    assert len(kt("logs", "ex-since", "--since", "1d", db=db).stdout.splitlines()) == 2


def test_logs_json_and_jsonl(db: Path) -> None:
    result = kt("logs", "ex-succ", "--json", db=db)  # a unique prefix is enough
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    assert [e["message"] for e in entries] == ["execution started", "hello", "slow disk", "rows=3"]
    assert entries[3] == {
        "execution_id": "ex-success", "task_id": "b", "timestamp": "2026-11-21T10:15:32.600Z", "level": "DEBUG",
        "source": "plugin:core/shell.run", "message": "rows=3", "metadata": {"rows": 3},
    }
    jsonl = kt("logs", "ex-success", "--jsonl", db=db)
    assert [json.loads(line) for line in jsonl.stdout.splitlines()] == entries
    hostile = json.loads(kt("logs", "ex-failed", "--json", "--level", "INFO", "--task", "parse", db=db).stdout)
    assert hostile[0]["message"] == HOSTILE  # JSON keeps the exact text, escaped
    many = json.loads(kt("logs", "ex-many", "--json", db=db).stdout)  # several pages of 1,000
    assert [e["message"] for e in many] == [f"line {i}" for i in range(5000)]


@pytest.mark.parametrize(
    ("args", "code", "stdout", "stderr"),
    [
        (["logs", "nope"], 1, "", NOT_FOUND.format("nope")),
        (["logs", "ex-nologs"], 0, "", "No logs found for execution ex-nologs\n"),
        (["logs", "ex-nologs", "--json"], 0, "[]\n", "No logs found for execution ex-nologs\n"),
        (["logs", "nope", "--json"], 1, "", NOT_FOUND.format("nope")),  # stdout stays empty, not even []
        (["logs", "ex-success", "--task", "zzz"], 1, "", "Task not found: zzz in execution ex-success\n"),
        (["logs", "ex-success", "--task", "zzz", "--json"], 1, "", "Task not found: zzz in execution ex-success\n"),
        (["logs", "ex-success", "--task", "zzz", "--follow"], 1, "", "Task not found: zzz in execution ex-success\n"),
        (["logs", "ex-success", "--task", "a", "--level", "ERROR"], 0, "",
         "No logs found for task a in execution ex-success\n"),
        (["logs", "ex-nologs", "--task", "a"], 0, "", "No logs found for task a in execution ex-nologs\n"),
        (["logs", "ex-success", "--level", "TRACE"], 1, "", "Invalid log level. Must be one of: DEBUG, INFO, WARN, ERROR\n"),
        (["logs", "ex-success", "--since", "5 minutes"], 1, "", "Invalid time format. Examples: 5m, 2h, 1d\n"),
        (["logs", "ex-success", "--json", "--follow"], 1, "", "--json cannot be used with --follow\n"),
        (["inspect", "nope"], 1, "", NOT_FOUND.format("nope")),
        (["cancel", "nope"], 1, "", NOT_FOUND.format("nope")),
        (["list", "--state", "DONE"], 1, "", "Invalid state. Must be one of: QUEUED, PENDING, WAITING, RUNNING, SUCCESS, FAILED, CANCELLED\n"),
        (["list", "--workflow", "nothing", "--json"], 0, "[]\n", "No executions found\n"),
        (["cancel", "ex-stuck", "--reason", "x" * 1001], 1, "", "--reason must be at most 1000 characters (got 1001)\n"),
        (["cancel", "ex-success", "--reason", "x" * 1000], 0, "Execution ex-success already finished: SUCCESS\n", ""),
    ],
)
def test_exact_messages_and_exit_codes(db: Path, args, code, stdout, stderr) -> None:
    result = kt(*args, db=db)
    assert (result.returncode, result.stdout, result.stderr) == (code, stdout, stderr)


@pytest.mark.parametrize("command", ["logs", "inspect", "cancel"])
def test_ambiguous_prefix_names_the_matches(more_db: Path, command: str) -> None:
    result = kt(command, "fc7f", db=more_db)
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", "Execution id prefix fc7f matches several executions: fc7f0001aaaa, fc7f0002bbbb; give more characters\n"
    )
    many = kt(command, "abcd", db=more_db)
    assert (many.returncode, many.stderr) == (
        1, "Execution id prefix abcd matches several executions: "
           "abcd0001, abcd0002, abcd0003, abcd0004, abcd0005, …; give more characters\n",
    )
    assert kt(command, "fc7f0002", db=more_db).returncode == 0  # unique again
    assert kt(command, "FC7F0002", db=more_db).stderr == NOT_FOUND.format("FC7F0002")  # ids are case-sensitive
    # too short to be a prefix, and the message says why rather than only "not found"
    assert kt(command, "fc7", db=more_db).stderr == NOT_FOUND.format("fc7 (an id prefix needs at least 4 characters)")


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (["logs", "\x1b[31m1680"], NOT_FOUND.format("\\x1b[31m1680")),
        (["logs", "ab\ncd"], NOT_FOUND.format("ab\\ncd")),
        (["logs", "ab\ncd", "--json"], NOT_FOUND.format("ab\\ncd")),
        (["inspect", "\x1b]0;title\x07\u202e"], NOT_FOUND.format("\\x1b]0;title\\x07\\u202e")),
        (["cancel", "a\rb\tc"], NOT_FOUND.format("a\\rb\\tc")),
        (["logs", "ex-success", "--task", "\x1b[2Ja\nb"], "Task not found: \\x1b[2Ja\\nb in execution ex-success\n"),
        (["inspect", "ex-failed", "--task", "\x1b[2J"], "Task not found: \\x1b[2J in execution ex-failed\n"),
    ],
)
def test_echoed_arguments_are_escaped_and_one_line(db: Path, args: list[str], stderr: str) -> None:
    result = kt(*args, db=db)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", stderr)


def test_cyclopts_errors_and_undecodable_arguments_are_one_line(db: Path) -> None:
    bad = kt("list", "--limit", "\x1b[2J\nx", db=db)  # cyclopts echoes the value
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("kestra-trio: error: ") and bad.stderr.count("\n") == 1 and "\x1b" not in bad.stderr
    assert "\\x1b[2J" in bad.stderr
    for limit in ("1.5", "0x10", "1e3"):  # cyclopts alone would round or read hex: a typo must not be guessed at
        fraction = kt("list", "--limit", limit, db=db)
        assert (fraction.returncode, fraction.stdout) == (2, ""), fraction
        assert f"expected a whole number, got '{limit}'" in fraction.stderr
    for argv in ([b"logs", b"\xff\xfe\xfd\xfc"], [b"logs", b"ex-success", b"--task", b"\xff"],
                 [b"inspect", b"ex-failed", b"--task", b"\xff"], [b"list", b"--workflow", b"\xff"]):
        result = subprocess.run([KT.encode(), b"execution", *argv, b"--db", str(db).encode()], capture_output=True,
                                env=ENV, timeout=120, cwd=ROOT)
        assert b"internal error" not in result.stderr and result.stderr.count(b"\n") == 1, result.stderr
    # an argument that is not UTF-8 is refused at the CLI's edge, naming it (exit 2)
    missing = subprocess.run([KT.encode(), b"execution", b"logs", b"\xff\xfe\xfd\xfc", b"--db", str(db).encode()],
                             capture_output=True, env=ENV, timeout=120, cwd=ROOT)
    assert (missing.returncode, missing.stderr) == (
        2, b'kestra-trio: error: Invalid value "\\udcff\\udcfe\\udcfd\\udcfc" for EXECUTION_ID. the value is not valid UTF-8 text\n'
    )


def test_a_hostile_stored_id_is_escaped(more_db: Path) -> None:
    shown = "ex-\\x1b[31mhostile"
    cancel = kt("cancel", "ex-\x1b[31m", db=more_db)  # a unique prefix: the id printed is the stored one
    assert (cancel.returncode, cancel.stdout, cancel.stderr) == (0, f"Execution {shown} already finished: SUCCESS\n", "")
    logs = kt("logs", "ex-\x1b[31m", db=more_db)
    assert (logs.returncode, logs.stdout, logs.stderr) == (0, "", f"No logs found for execution {shown}\n")
    task_missing = kt("logs", "ex-\x1b[31m", "--task", "zzz", db=more_db)
    assert task_missing.stderr == f"Task not found: zzz in execution {shown}\n"


def test_missing_database_reads_as_empty(tmp_path: Path) -> None:
    result = kt("logs", "abcd", db=tmp_path / "absent.db")
    assert (result.returncode, result.stderr) == (1, NOT_FOUND.format("abcd"))
    assert not (tmp_path / "absent.db").exists()


def test_an_empty_db_option_is_refused_not_read_as_the_default(tmp_path: Path) -> None:
    # `--db "$UNSET"` must not quietly show the per-user default database
    env = {**ENV, "HOME": str(tmp_path), "XDG_DATA_HOME": ""}
    result = subprocess.run([KT, "execution", "list", "--db", ""], capture_output=True, text=True, env=env, timeout=120)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "kestra-trio: error: --db is empty; give the database file's path (or leave --db out for the default)\n"


def test_broken_pipe_is_quiet(db: Path) -> None:
    with subprocess.Popen([KT, "execution", "logs", "ex-many", "--db", str(db)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=ENV) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().endswith(b"line 0\n")
        proc.stdout.close()  # `| head -1`
        assert proc.wait(timeout=60) == 0
        assert proc.stderr.read() == b""


# --------------------------------------------------------------------------- --follow


WRITER = textwrap.dedent(
    """
    import sys, time, trio
    from factories import ExecutionFactory
    from kestra_trio.storage.db import open_database

    async def main(path, execution_id, t0):
        async with open_database(path) as db:
            ex = ExecutionFactory(db, execution_id, t0=t0)
            n = 0
            for batch in range(20):
                entries = []
                for i in range(10):
                    # repeated timestamps inside a batch, and each 5th batch is "late": older timestamps
                    offset = (batch - 3 if batch % 5 == 4 else batch) * 10
                    level = "ERROR" if n % 7 == 0 else "INFO"
                    entries.append((offset, level, "a" if n % 2 else "b", f"line {n:03d}"))
                    n += 1
                await ex.logs(entries)
                await trio.sleep(0.05)
            await ex.end_task("a", "SUCCESS", end=300, attempt_start=0)
            await ex.end_task("b", "SUCCESS", end=300, attempt_start=0)
            await ex.finish("SUCCESS", at=400)

    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
    """
)


async def _running_execution(path: Path, execution_id: str, t0: int) -> None:
    async with open_database(path) as db:
        ex = ExecutionFactory(db, execution_id, t0=t0)
        await ex.create([task("a"), task("b")])
        await ex.start(0)
        await ex.start_task("a", start=0)
        await ex.start_task("b", start=0)
        await ex.logs([(0, "INFO", "a", "before follow"), (0, "ERROR", "b", "before follow (b)")])


def test_follow_prints_every_line_once_in_commit_order(tmp_path: Path) -> None:
    path = tmp_path / "follow.db"
    trio.run(_running_execution, path, "ex-follow", T0)
    (tmp_path / "writer.py").write_text(WRITER)
    followers = [
        subprocess.Popen([KT, "execution", "logs", "ex-follow", "--follow", "--db", str(path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV),
        subprocess.Popen([KT, "execution", "logs", "ex-follow", "--follow", "--jsonl", "--level", "ERROR",
                          "--task", "b", "--db", str(path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV),
    ]
    try:
        # each has printed what was there before: both are polling before the writer starts
        assert followers[0].stdout is not None and followers[1].stdout is not None
        first_text = [followers[0].stdout.readline(), followers[0].stdout.readline()]
        first_json = followers[1].stdout.readline()
        writer = subprocess.run([sys.executable, str(tmp_path / "writer.py"), str(path), "ex-follow", str(T0)],
                                env=ENV, capture_output=True, text=True, timeout=120)
        assert writer.returncode == 0, writer.stderr
        text_out, text_err = followers[0].communicate(timeout=60)
        json_out, json_err = followers[1].communicate(timeout=60)
    finally:  # a failure above must not leave a follower running or its pipes open
        for follower in followers:
            if follower.poll() is None:
                follower.kill()
            follower.wait()
            for stream in (follower.stdout, follower.stderr):
                if stream is not None:
                    stream.close()
    assert (followers[0].returncode, text_err) == (0, "")
    assert (followers[1].returncode, json_err) == (0, "")

    messages = [line.rsplit("] ", 1)[1] for line in "".join(first_text).splitlines() + text_out.splitlines()]
    # once each, in commit order
    assert messages == ["before follow", "before follow (b)"] + [f"line {n:03d}" for n in range(200)]
    errors_b = [json.loads(line) for line in [first_json, *json_out.splitlines()]]
    expected = ["before follow (b)"] + [f"line {n:03d}" for n in range(200) if n % 7 == 0 and n % 2 == 0]
    assert [e["message"] for e in errors_b] == expected
    assert {(e["level"], e["task_id"]) for e in errors_b} == {("ERROR", "b")}


def test_follow_on_finished_execution_exits_at_once(db: Path) -> None:
    result = kt("logs", "ex-success", "--follow", db=db)  # kt's timeout fails the test if it keeps polling
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 4
    result = kt("logs", "ex-nologs", "--follow", "--jsonl", db=db)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "No logs found for execution ex-nologs\n")


def test_follow_with_an_unknown_task_fails_at_once(more_db: Path) -> None:
    result = kt("logs", "ex-live", "--follow", "--task", "typo", db=more_db, timeout=60)  # used to wait forever
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "Task not found: typo in execution ex-live\n")
    jsonl = kt("logs", "ex-live", "--follow", "--jsonl", "--task", "typo", db=more_db, timeout=60)
    assert (jsonl.returncode, jsonl.stdout, jsonl.stderr) == (1, "", "Task not found: typo in execution ex-live\n")


def test_follow_stops_when_the_recorded_engine_is_gone(db: Path) -> None:
    # ex-stuck: RUNNING, its engine (this host, a pid that does not exist) died without a word;
    # without the engine check this would follow until kt's timeout
    result = kt("logs", "ex-stuck", "--follow", db=db, timeout=120)
    assert (result.returncode, result.stderr) == (1, LOST.format("ex-stuck", DEAD_PID))
    assert result.stdout.endswith("[INFO] [plugin:core/shell.run] still working\n")


@pytest.mark.parametrize("execution_id", ["ex-live", "ex-remote"])
def test_follow_ctrl_c_exits_130_without_traceback(more_db: Path, execution_id: str) -> None:
    # ex-live: the engine is alive; ex-remote: it runs on another host, so we cannot know: it keeps
    # following (which engines count as gone: tests/cli/test_execution_reads.py)
    # as from a terminal: SIGINT at its default (a suite started in the background inherits it ignored)
    with subprocess.Popen([KT, "execution", "logs", execution_id, "--follow", "--db", str(more_db)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().endswith("[INFO] [plugin:core/shell.run] still working\n")  # in the poll loop
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err and err == ""


LONG_WORKFLOW = textwrap.dedent(
    """
    id: long
    namespace: tests
    tasks:
      - id: tick
        type: core/shell.run
        inputs:
          command: i=0; while [ $i -lt 6000 ]; do i=$((i+1)); echo "tick $i"; sleep 0.05; done
      - id: quiet
        type: core/shell.run
        inputs:
          command: echo "sleeping"; sleep 600
    """
)


def _read_lines(stream, into: list[str]) -> threading.Thread:
    def run() -> None:
        for line in stream:
            into.append(line)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_follow_stops_when_a_real_engine_is_killed(tmp_path: Path) -> None:
    """`kestra-trio run` is SIGKILLed mid-run: the follower prints what was committed and exits 1."""
    path = tmp_path / "killed.db"
    (tmp_path / "long.yaml").write_text(LONG_WORKFLOW)
    engine = subprocess.Popen([KT, "run", str(tmp_path / "long.yaml"), "--db", str(path)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=ENV, cwd=tmp_path)
    follower = reader = None
    lines: list[str] = []
    try:
        def running_id() -> str | None:
            listed = kt("list", "--json", db=path).stdout
            return json.loads(listed)[0]["id"] if listed.startswith("[\n") else None

        execution_id = _wait_for(running_id, 30, "the execution to be created")
        follower = subprocess.Popen([KT, "execution", "logs", execution_id, "--follow", "--db", str(path)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        reader = _read_lines(follower.stdout, lines)
        _wait_for(lambda: any(line.endswith("] tick 5\n") for line in lines), 30, "the follower to print tick 5")
        engine.send_signal(signal.SIGKILL)
        assert engine.wait(timeout=60) == -signal.SIGKILL
        assert follower.wait(timeout=60) == 1  # it used to wait forever
        reader.join(timeout=120)
        assert follower.stderr is not None
        assert follower.stderr.read() == LOST.format(execution_id, engine.pid)
    finally:
        for proc in (engine, follower):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if reader is not None:
            reader.join(timeout=120)
        if follower is not None:
            for stream in (follower.stdout, follower.stderr):
                if stream is not None:
                    stream.close()
    inspected = json.loads(kt("inspect", execution_id, "--json", db=path).stdout)["execution"]
    assert (inspected["state"], inspected["engine_pid"]) == ("RUNNING", engine.pid)
    text_view = kt("inspect", execution_id, db=path)  # "RUNNING" alone would look alive
    assert f"note: the engine running this execution (pid {engine.pid}) is gone" in text_view.stderr
    committed = kt("logs", execution_id, db=path).stdout.splitlines(keepends=True)
    assert any(line.endswith("] tick 5\n") for line in committed)
    assert sorted(lines) == sorted(committed)  # every committed line, once (follow prints in commit order)
    # what the message promises: the next `kestra-trio run` on this host marks it FAILED (ENGINE_LOST)
    rerun = subprocess.run([KT, "run", str(ROOT / "examples" / "hello.yaml"), "--db", str(path)],
                           capture_output=True, text=True, env=ENV, timeout=60, cwd=ROOT)
    assert rerun.returncode == 0, rerun.stderr
    after = json.loads(kt("inspect", execution_id, "--json", db=path).stdout)["execution"]
    assert (after["state"], after["reason"]) == ("FAILED", "ENGINE_LOST")


# --------------------------------------------------------------------------- inspect


def test_inspect_default(db: Path) -> None:
    result = kt("inspect", "ex-failed", db=db)
    assert result.returncode == 0, result.stderr
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[:12] == [
        "Workflow     etl",
        "Execution    ex-failed",
        "State        FAILED",
        "Reason       TASK_FAILED",
        "Message      task parse failed",
        "Failed task  parse",
        "Trigger      manual",
        "Started      2026-11-21T10:15:30.000Z",
        "Ended        2026-11-21T10:15:33.500Z",
        "Duration     3.5s",
        "Tasks        2",
        "Log entries  6",
    ]
    assert "TASK   TYPE            STATE    ATTEMPTS  DURATION  STARTED       ENDED         NEEDS" in lines
    assert "parse  core/shell.run  FAILED   1/1       300ms     10:15:33.100  10:15:33.400  fetch ✓" in lines
    assert "    attempt 1  FAILED  (PLUGIN_FAILED, exit code 1, after 1s): exit code 1" in lines
    assert "  parse: FAILED (reason PLUGIN_FAILED, exit code 2)" in lines
    assert "      ValueError: bad json" in lines
    assert "inputs" not in result.stdout and "***SECRET***" not in result.stdout


def test_inspect_flags(db: Path) -> None:
    shown = kt("inspect", "ex-failed", "--show-inputs", db=db).stdout
    assert "      token = ***SECRET***" in shown and "... (truncated)" in shown
    full = kt("inspect", "ex-failed", "--show-inputs", "--no-truncate", db=db).stdout
    assert "x" * 300 in full and "truncated" not in full

    timeline = kt("inspect", "ex-failed", "--timeline", db=db).stdout
    chart = timeline.split("Timeline\n", 1)[1].splitlines()
    assert chart[0].strip().startswith("0s") and chart[0].rstrip().endswith("3.5s")
    assert chart[1].startswith("fetch █") and "░" in chart[1] and chart[1].rstrip().endswith("+50ms  3s")
    assert chart[2].startswith("parse  ") and chart[2].rstrip().endswith("+3.1s  300ms  FAILED")
    fetch_bar_end = max(chart[1].rfind("█"), chart[1].rfind("░"))
    assert chart[2].index("█") >= fetch_bar_end  # parse starts after fetch ended

    audit = kt("inspect", "ex-failed", "--audit", db=db).stdout.split("Audit events (", 1)[1]
    assert "STATE_CHANGE  task fetch: RUNNING → WAITING  reason=BACKOFF  message=exit code 1" in audit
    assert audit.index("execution: PENDING → RUNNING") < audit.index("execution: RUNNING → FAILED")

    one = kt("inspect", "ex-failed", "--task", "parse", db=db)
    assert one.returncode == 0
    assert "Task parse\n" in one.stdout and "Attempts (1)\n  attempt 1  FAILED" in one.stdout
    assert f"[INFO] [plugin:core/shell.run] {HOSTILE_SHOWN}\n" in one.stdout
    missing = kt("inspect", "ex-failed", "--task", "zzz", db=db)
    assert (missing.returncode, missing.stderr) == (1, "Task not found: zzz in execution ex-failed\n")

    running = kt("inspect", "ex-stuck", db=db).stdout
    assert running.startswith("Execution in progress\n") and "⏳ RUNNING" in running and "running for " in running


def test_inspect_json(db: Path) -> None:
    result = kt("inspect", "ex-failed", "--json", db=db)
    data = json.loads(result.stdout)
    assert set(data) >= {"execution", "tasks", "audit_events"}
    assert data["execution"]["ended_at"] == "2026-11-21T10:15:33.500Z"
    fetch, parse = data["tasks"]
    assert len(fetch["inputs"]["url"]) == 320 and fetch["outputs"] == {"status": 200}
    assert [a["number"] for a in fetch["attempts"]] == [1, 2]
    assert parse["error"]["stderr_tail"][-1] == "ValueError: bad json"
    assert data["audit_events"][-1]["metadata"]["to_state"] == "FAILED"


# --------------------------------------------------------------------------- list and cancel


def test_list(db: Path) -> None:
    result = kt("list", db=db)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "WORKFLOW", "STATE", "STARTED", "DURATION", "TASKS"]
    ids = [line.split()[0] for line in lines[1:]]
    assert sorted(ids) == ["ex-failed", "ex-many", "ex-nologs", "ex-since", "ex-stuck", "ex-success"]
    created = [d["created_at"] for d in json.loads(kt("list", "--json", db=db).stdout)]
    assert [d for d in created] == sorted(created, reverse=True)  # newest first
    assert any(line.startswith("ex-failed") and "1 SUCCESS 1 FAILED" in line for line in lines)
    data = json.loads(kt("list", "--json", "--workflow", "etl", db=db).stdout)
    assert [d["id"] for d in data] == ["ex-failed"] and data[0]["task_states"] == {"SUCCESS": 1, "FAILED": 1}
    assert [d["id"] for d in json.loads(kt("list", "--json", "--state", "running", db=db).stdout)] == [
        "ex-stuck", "ex-since",
    ]
    assert len(kt("list", "--limit", "2", db=db).stdout.splitlines()) == 3
    empty = kt("list", "--workflow", "nothing", db=db)
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "", "No executions found\n")
    empty_json = kt("list", "--workflow", "nothing", "--json", db=db)  # same note; stdout stays valid JSON
    assert (empty_json.returncode, empty_json.stdout, empty_json.stderr) == (0, "[]\n", "No executions found\n")


def test_cancel_finished_changes_nothing(db: Path) -> None:
    result = kt("cancel", "ex-success", "--reason", "oops", db=db)
    assert (result.returncode, result.stdout) == (0, "Execution ex-success already finished: SUCCESS\n")
    audit = json.loads(kt("inspect", "ex-success", "--json", db=db).stdout)["audit_events"]
    assert "CANCEL_REQUESTED" not in {e["event_type"] for e in audit}


def test_cancel_without_engine_reports_state_and_note(db: Path) -> None:
    # its engine is gone: nothing to wait for (kt's timeout fails the test if it waits the hour)
    result = kt("cancel", "ex-stuck", "--reason", "too slow", "--wait", "3600", db=db, timeout=60)
    assert result.returncode == 0
    assert result.stdout == (
        "Cancel requested for execution ex-stuck\n"
        "Execution ex-stuck: cancel requested; state is still RUNNING\n"
    )
    assert result.stderr.startswith("note: the engine process recorded for this execution (pid ")
    again = kt("cancel", "ex-stuck", "--wait", "0", db=db)  # idempotent: one pending request
    assert again.stdout.startswith("Cancel requested for execution ex-stuck (it was already requested)\n")
    audit = json.loads(kt("inspect", "ex-stuck", "--json", db=db).stdout)["audit_events"]
    requests = [e for e in audit if e["event_type"] == "CANCEL_REQUESTED"]
    assert [r["metadata"] for r in requests] == [{"requested_by": "user", "reason": "too slow"}]


CANCELLABLE = textwrap.dedent(
    """
    id: cancellable
    tasks:
      - id: wait
        type: core/shell.run
        inputs:
          command: echo started; sleep 60
      - id: after
        type: core/log.message
        needs: [wait]
        inputs:
          message: never printed
    """
)


def test_cancel_a_real_run_from_another_terminal(tmp_path: Path) -> None:
    path = tmp_path / "cancel.db"
    (tmp_path / "cancellable.yaml").write_text(CANCELLABLE)
    with subprocess.Popen([KT, "run", str(tmp_path / "cancellable.yaml"), "--db", str(path)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path) as engine:
        assert engine.stdout is not None
        execution_id = engine.stdout.readline().split()[1]  # "Execution <id> created: ..."
        assert engine.stdout.readline().split()[1:] == ["RUNNING", "wait"]
        result = kt("cancel", execution_id[:6], "--reason", "user asked", db=path)
        out, err = engine.communicate(timeout=120)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"Cancel requested for execution {execution_id}\nExecution {execution_id} cancelled\n"
    assert engine.returncode == 1  # cancelled from another terminal
    assert f"Execution {execution_id} CANCELLED in " in out and "Stopping (user asked)" in err

    audit = json.loads(kt("inspect", execution_id, "--json", db=path).stdout)["audit_events"]
    kinds = [e["event_type"] for e in audit]
    assert kinds.index("CANCEL_REQUESTED") < kinds.index("CANCELLED") == len(kinds) - 1
    by_kind = {e["event_type"]: e["metadata"] for e in audit}
    assert by_kind["CANCEL_REQUESTED"] == {"requested_by": "user", "reason": "user asked"}
    assert by_kind["CANCELLED"] == {"cancelled_by": "user", "reason": "user asked", "pending_task_count": 1}
    last_change = [e["metadata"] for e in audit if e["event_type"] == "STATE_CHANGE"][-1]
    assert (last_change["entity"], last_change["to_state"], last_change["reason"]) == (
        "execution", "CANCELLED", "EXECUTION_CANCELLED",
    )
    again = kt("cancel", execution_id, db=path)
    assert (again.returncode, again.stdout) == (0, f"Execution {execution_id} already finished: CANCELLED\n")


async def _cancelled_as_soon_as_requested(path: Path, execution_id: str, engine_pid: int) -> None:
    """RUNNING; a trigger stands in for an engine that commits CANCELLED just after the request lands."""
    async with open_database(path) as db:
        ex = ExecutionFactory(db, execution_id)
        await ex.create([task("a")], engine_pid=engine_pid, engine_host=socket.gethostname())
        await ex.start(0)
        await ex.start_task("a", start=0)
        await db.run(lambda raw: raw.execute(
            "CREATE TRIGGER engine_stands_in AFTER INSERT ON cancel_requests BEGIN "
            "UPDATE executions SET state = 'CANCELLED', reason_code = 'EXECUTION_CANCELLED' "
            "WHERE id = NEW.execution_id; END"
        ))


@pytest.mark.parametrize(
    ("engine_pid", "wait"),
    [(os.getpid(), "0"), (DEAD_PID, "5")],  # the wait runs out before a poll / the engine is gone: no wait at all
    ids=["wait-ran-out", "engine-gone"],
)
def test_cancel_answers_with_the_state_recorded_when_it_answers(tmp_path: Path, engine_pid: int, wait: str) -> None:
    """It printed "state is still RUNNING" for an execution already CANCELLED (the last value it had read)."""
    path = tmp_path / "race.db"
    trio.run(_cancelled_as_soon_as_requested, path, "ex-race", engine_pid)
    result = kt("cancel", "ex-race", "--wait", wait, db=path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "Cancel requested for execution ex-race\nExecution ex-race cancelled\n"


# --------------------------------------------------------------------------- start-up cost and real runs


def test_help_does_not_import_the_engine() -> None:
    code = (
        "import sys; import kestra_trio.cli.execution; "
        "heavy = {'trio', 'rich.console', 'sqlite_anyio', 'kestra_trio.storage.db'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert result.stdout == "[]\n", result.stderr
    help_text = subprocess.run([KT, "execution", "logs", "--help"], capture_output=True, text=True, env=ENV, timeout=120)
    assert help_text.returncode == 0 and "--follow" in help_text.stdout and "--jsonl" in help_text.stdout


def test_against_a_real_run(tmp_path: Path) -> None:
    """The readers agree with what the engine recorded."""
    workflow = ROOT / "examples" / "hello.yaml"
    path = tmp_path / "real.db"
    run = subprocess.run([KT, "run", str(workflow), "--db", str(path)], capture_output=True, text=True, env=ENV,
                         timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    listed = json.loads(kt("list", "--json", db=path).stdout)
    assert len(listed) == 1
    execution = listed[0]
    logs = kt("logs", execution["id"], "--jsonl", db=path)
    assert logs.returncode == 0
    assert len(logs.stdout.splitlines()) == execution["log_entry_count"]
    inspected = json.loads(kt("inspect", execution["id"], "--json", db=path).stdout)
    assert inspected["execution"]["state"] == execution["state"]
    assert kt("logs", execution["id"], "--follow", db=path).returncode == 0  # finished: exits at once


def _run_on_a_terminal(argv: list[str], env: dict[str, str]) -> str:
    """Run `argv` with stdout on a pseudo-terminal; return what it printed."""
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(argv, stdout=follower, stderr=subprocess.PIPE, env=env, timeout=120)
    finally:
        os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal has no writer any more
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.returncode == 0, proc.stderr
    return b"".join(chunks).decode()


def test_colours_only_on_a_terminal_and_never_with_no_color(db: Path) -> None:
    logs = [KT, "execution", "logs", "ex-failed", "--db", str(db)]
    coloured = _run_on_a_terminal(logs, ENV)
    assert "\x1b[31m[ERROR]\x1b[0m" in coloured and "\x1b[33m[WARN]\x1b[0m" in coloured
    assert " [INFO] [plugin:core/shell.run] \x1b[31m\x1b[0mb nul\\x00 end\r\n" in coloured  # last state; NUL escaped
    raw = _run_on_a_terminal([*logs, "--raw"], ENV)
    assert f" [INFO] [plugin:core/shell.run] {HOSTILE_SHOWN}\r\n" in raw  # as before: every control escaped
    inspect = _run_on_a_terminal([KT, "execution", "inspect", "ex-failed", "--db", str(db)], ENV)
    assert "\x1b[31mFAILED\x1b[0m" in inspect and "\x1b[32mSUCCESS\x1b[0m" in inspect
    plain = _run_on_a_terminal(logs, {**ENV, "NO_COLOR": "1"})
    assert "\x1b[" not in plain.replace("\\x1b[", "")
    assert " [INFO] [plugin:core/shell.run] b nul\\x00 end\r\n" in plain
    piped = kt("logs", "ex-failed", db=db).stdout  # a pipe is not a terminal: unchanged
    assert "\x1b" not in piped and f" [INFO] [plugin:core/shell.run] {HOSTILE_SHOWN}\n" in piped


def test_a_programs_colours_and_progress_lines_on_a_terminal(more_db: Path) -> None:
    logs = [KT, "execution", "logs", "ex-colours", "--db", str(more_db)]
    lines = [line.split("] ", 3)[3] for line in _run_on_a_terminal(logs, ENV).splitlines()]
    assert lines == [
        "tests/test_x.py \x1b[32m.\x1b[0m\x1b[32m.\x1b[0m\x1b[31mF\x1b[0m \\x1b[4m[100%]\x1b[0m",
        "\x1b[1mDownloading 100%\x1b[0m",
    ]
    raw = [line.split("] ", 3)[3] for line in _run_on_a_terminal([*logs, "--raw"], ENV).splitlines()]
    assert raw == [PYTEST_DOTS.replace("\x1b", "\\x1b"), PROGRESS.replace("\x1b", "\\x1b").replace("\r", "\\r")]
    no_color = [line.split("] ", 3)[3] for line in _run_on_a_terminal(logs, {**ENV, "NO_COLOR": "1"}).splitlines()]
    assert no_color == ["tests/test_x.py ..F \\x1b[4m[100%]", "Downloading 100%"]
    jsonl = kt("logs", "ex-colours", "--jsonl", db=more_db).stdout.splitlines()
    assert [json.loads(line)["message"] for line in jsonl] == [PYTEST_DOTS, PROGRESS]  # exact, as stored


def test_out_of_range_arguments_are_bad_arguments_or_say_the_bound(db: Path) -> None:
    wait = kt("cancel", "ex-stuck", "--wait", "-1", db=db)
    assert (wait.returncode, wait.stderr) == (2, "--wait must be between 0 and 3600 seconds\n")  # as `--wait abc`
    limit = kt("list", "--limit", "0", db=db)
    assert (limit.returncode, limit.stderr) == (2, "--limit must be between 1 and 1000000\n")  # as `--limit abc`
    digits = kt("logs", "ex-success", "--since", "\u0661s", db=db)  # an Arabic-Indic 1: not a time as written
    assert (digits.returncode, digits.stderr) == (1, "Invalid time format. Examples: 5m, 2h, 1d\n")
    since = kt("logs", "ex-success", "--since", "3651d", db=db)
    assert (since.returncode, since.stderr) == (1, "Invalid time format. Examples: 5m, 2h, 1d (at most 3650d)\n")
