"""`kestra-trio … --help | head -1`: help written into a pipe nobody reads exits 0, quietly.

rich (which cyclopts prints help with) turns EPIPE into `SystemExit(1)`; `main()` must treat
it like the data commands treat EPIPE. Runs the installed entry point with a stdout pipe
whose read end is closed before the command starts, so its first write gets EPIPE.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts the real CLI or engine and its processes (--quick skips it)

TESTS = Path(__file__).resolve().parents[1]
KT = str(Path(sys.executable).with_name("kestra-trio"))
ENV = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "KESTRA_TRIO_DB")}
ENV["PYTHONPATH"] = str(TESTS)


def _into_closed_pipe(*args: str) -> subprocess.CompletedProcess[bytes]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -1` that has already gone away
    try:
        return subprocess.run([KT, *args], stdout=write_end, stderr=subprocess.PIPE, env=ENV, timeout=120)
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["execution", "--help"],
        ["execution", "logs", "--help"],
        ["run", "--help"],
        ["db", "--help"],
    ],
)
def test_help_into_a_closed_pipe_exits_0_quietly(args: list[str]) -> None:
    result = _into_closed_pipe(*args)
    assert (result.returncode, result.stderr) == (0, b"")


def test_a_table_into_a_closed_pipe_exits_0_quietly(tmp_path: Path) -> None:
    import trio

    from factories import simple_success
    from kestra_trio.storage.db import open_database

    async def build() -> None:
        async with open_database(tmp_path / "k.db") as db:
            await simple_success(db)

    trio.run(build)
    for args in (["execution", "list"], ["execution", "inspect", "ex-success"]):
        result = _into_closed_pipe(*args, "--db", str(tmp_path / "k.db"))
        assert (result.returncode, result.stderr) == (0, b""), args


def test_help_read_in_full_still_works() -> None:
    result = subprocess.run([KT, "--help"], capture_output=True, text=True, env={**ENV, "COLUMNS": "200"}, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("Usage: kestra-trio")
    # every command says what it is for, although none is imported to list them
    for command, summary in [
        ("run", "Run a workflow and wait for it to finish."),
        ("validate", "Check workflow files"),
        ("schema", "Print the JSON Schema"),
        ("execution", "Read the logs, state and history of executions"),
        ("plugin", "List, inspect and validate plugins"),
        ("db", "Manage the SQLite database"),
    ]:
        assert re.search(rf"│ {command} +{re.escape(summary)}", result.stdout), (command, result.stdout)
    run_help = subprocess.run([KT, "run", "--help"], capture_output=True, text=True, env={**ENV, "COLUMNS": "200"}, timeout=120)
    assert "Exit codes: 0 SUCCESS" in run_help.stdout and "--max-parallel" in run_help.stdout


def test_only_a_systemexit_raised_on_epipe_counts_as_the_reader_gone() -> None:
    from kestra_trio.cli import _reader_went_away

    try:
        try:
            raise BrokenPipeError(32, "Broken pipe")
        except BrokenPipeError:
            raise SystemExit(1)  # what rich's Console.on_broken_pipe does
    except SystemExit as exc:
        assert _reader_went_away(exc)
    assert not _reader_went_away(SystemExit(1))  # a command's own sys.exit(1) keeps its meaning
    assert _reader_went_away(BrokenPipeError())
