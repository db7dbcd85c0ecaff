"""Bad input through the real `kestra-trio` entry point: numbers SQLite or the clock cannot take,
arguments that are not UTF-8, a label given twice. Each ends in one line and a documented exit
code, never `internal error`, and `validate` refuses what `run` would refuse."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts the real CLI (--quick skips it)

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("kestra-trio"))
ENV = {**os.environ, "NO_COLOR": "1"}
HUGE = "99999999999999999999999"
#: argv bytes that are not UTF-8 (what `X=$(printf '\xff')` gives a shell)
NOT_UTF8 = b"\xff"


def kt(*args: str | bytes, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    argv = [CLI.encode(), *(a if isinstance(a, bytes) else a.encode() for a in args)]
    return subprocess.run(argv, capture_output=True, env=ENV, timeout=timeout, cwd=ROOT)


def one_error_line(result: subprocess.CompletedProcess[bytes], code: int) -> str:
    """The single stderr line of a refused command (exit `code`), without a traceback."""
    stderr = result.stderr.decode("utf-8")
    assert result.returncode == code, (result.returncode, stderr)
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("kestra-trio: error: "), stderr
    return stderr


def executions(db: Path) -> int:
    if not db.exists():
        return 0
    with closing(sqlite3.connect(db)) as conn:
        try:
            return conn.execute("SELECT count(*) FROM executions").fetchone()[0]
        except sqlite3.OperationalError:  # no schema yet: nothing was created
            return 0


def workflow(tmp_path: Path, body: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip())
    return path


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        (
            f"""
            id: huge-retry
            tasks:
              - id: a
                type: core/util.fail
                inputs: {{message: m}}
                retry: {{max: {HUGE}000}}
            """,
            "6:18 tasks[0].retry.max",
            "must be at most 1000 attempts",
        ),
        (
            f"""
            id: huge-concurrency
            concurrency: {{limit: {HUGE}}}
            tasks:
              - id: a
                type: core/log.message
                inputs: {{message: m}}
            """,
            "2:22 concurrency.limit",
            "must be a whole number of executions from 1 to 1000",
        ),
        (
            f"""
            id: huge-sleep
            tasks:
              - id: a
                type: core/util.sleep
                inputs: {{seconds: {HUGE}}}
            """,
            "5:23 tasks[0].inputs.seconds",
            f"{HUGE} is greater than the maximum of 315360000",  # the plugin's own bound, before the int64 one
        ),
        (
            """
            id: long-sleep
            tasks:
              - id: a
                type: core/util.sleep
                inputs: {seconds: 400000000}
            """,
            "5:23 tasks[0].inputs.seconds",
            "400000000 is greater than the maximum of 315360000",
        ),
        (
            f"""
            id: huge-variable
            variables: {{n: {HUGE}}}
            tasks:
              - id: a
                type: core/log.message
                inputs: {{message: "{{{{ vars.n }}}}"}}
            """,
            "2:16 variables.n",
            "whole numbers must be between -2^63 and 2^63-1",
        ),
    ],
)
def test_numbers_sqlite_or_the_clock_cannot_take_are_refused_by_validate_and_run(
    tmp_path: Path, body: str, where: str, message: str
) -> None:
    path = workflow(tmp_path, body)
    checked = kt("validate", str(path))
    out = checked.stdout.decode()
    assert checked.returncode == 1 and f"{path}:{where}: " in out and message in out, (checked, out)
    db = tmp_path / "k.db"
    ran = kt("run", str(path), "--db", str(db))
    stderr = ran.stderr.decode()
    assert ran.returncode == 2 and "internal error" not in stderr, stderr
    assert f"{path}:{where}: " in stderr and message in stderr
    assert stderr.splitlines()[-1].endswith("the workflow is invalid (1 problem above); nothing was run")
    assert executions(db) == 0


def test_whole_number_options_must_fit_64_bits_and_max_parallel_has_a_ceiling(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    assert kt("run", "examples/hello.yaml", "--db", str(db)).returncode == 0
    revision = one_error_line(kt("workflow", "show", "hello", "--revision", HUGE, "--db", str(db)), 2)
    assert f"--revision: {HUGE} is out of range (whole numbers are at most 9223372036854775807)" in revision
    largest = kt("workflow", "show", "hello", "--revision", str(2**63 - 1), "--db", str(db))
    assert largest.returncode == 1 and b"internal error" not in largest.stderr  # in range: simply not found
    parallel = one_error_line(kt("run", "examples/hello.yaml", "--max-parallel", "1001", "--db", str(db)), 2)
    assert "--max-parallel / KESTRA_TRIO_MAX_PARALLEL must be between 1 and 1000, got 1001" in parallel
    assert executions(db) == 1


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ([b"run", b"examples/hello.yaml", b"--label", b"k=" + NOT_UTF8], b"--label"),
        ([b"run", b"examples/hello.yaml", b"--input", b"name=" + NOT_UTF8], b"--input"),
        ([b"execution", b"list", b"--label", b"k=" + NOT_UTF8], b"--label"),
        ([b"execution", b"logs", NOT_UTF8 * 4], b"EXECUTION_ID"),
        ([b"execution", b"cancel", b"abcd", b"--reason", NOT_UTF8], b"--reason"),
        ([b"workflow", b"show", NOT_UTF8], b"WORKFLOW_ID"),
        ([b"workflow", b"enable", NOT_UTF8], b"WORKFLOW_ID"),
        ([b"workflow", b"history", NOT_UTF8], b"WORKFLOW_ID"),
        ([b"execution", b"start", NOT_UTF8, b"--server", b"http://127.0.0.1:1"], b"WORKFLOW"),
    ],
)
def test_an_argument_that_is_not_utf8_is_refused_naming_it(tmp_path: Path, args: list[bytes], name: bytes) -> None:
    db = tmp_path / "k.db"
    extra = [] if b"--server" in args else [b"--db", str(db).encode()]
    stderr = one_error_line(kt(*args, *extra), 2)
    assert f" for {name.decode()}. the value is not valid UTF-8 text" in stderr, stderr
    assert executions(db) == 0


def test_file_names_that_are_not_utf8_still_work(tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path)
    source = folder + b"/hello-" + NOT_UTF8 + b".yaml"
    db = folder + b"/k-" + NOT_UTF8 + b".db"
    with open(source, "wb") as file:
        file.write((ROOT / "examples/hello.yaml").read_bytes())
    assert kt("validate", source).returncode == 0
    ran = kt("run", source, "--db", db, "--label", "team=data")
    assert ran.returncode == 0 and b"SUCCESS" in ran.stdout, ran.stderr
    with closing(sqlite3.connect(db)) as conn:
        (path,) = conn.execute("SELECT workflow_path FROM executions").fetchone()
    assert path.endswith("/hello-\ufffd.yaml")  # the undecodable byte, stored replaced
    applied = kt("workflow", "apply", source, "--db", db)
    assert applied.returncode == 0 and b"unchanged" in applied.stdout, applied.stderr
    listed = kt("execution", "list", "--label", "team=data", "--db", db)
    assert listed.returncode == 0 and b"hello" in listed.stdout


def test_a_label_given_twice_is_refused_like_an_input_given_twice(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    ran = one_error_line(kt("run", "examples/hello.yaml", "--label", "k=v", "--label", "k=w", "--db", str(db)), 2)
    assert "--label k is given twice ('v' and 'w'); give it once" in ran
    assert executions(db) == 0
    inputs = one_error_line(kt("run", "examples/hello.yaml", "-i", "name=a", "-i", "name=b", "--db", str(db)), 2)
    assert "--input name is given twice" in inputs
    listed = kt("execution", "list", "--label", "k=v", "--label", "k=w", "--db", str(db))
    assert listed.returncode == 2 and "--label k is given twice" in listed.stderr.decode()
