"""The remote CLI (`--server URL`) against URLs that are not a kestra-trio server: the real
`kestra-trio` entry point as a subprocess, small fake HTTP servers as subprocesses. Every case
is one clear line and exit 3 — never a Python exception's text."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts the real CLI and processes (--quick skips it)

CLI = str(Path(sys.executable).with_name("kestra-trio"))
FAKE = str(Path(__file__).with_name("fake_http_server.py"))
ENV = {**os.environ, "NO_COLOR": "1"}
for name in ("KESTRA_TRIO_SERVER", "KESTRA_TRIO_TOKEN"):
    ENV.pop(name, None)


@contextmanager
def fake_server(*args: str) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, FAKE, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, env={**ENV, **(env or {})}, timeout=120)


COMMANDS = [
    ("execution", "list"),
    ("execution", "inspect", "abcd1234"),
    ("execution", "logs", "abcd1234"),
    ("execution", "cancel", "abcd1234"),
    ("execution", "start", "hello"),
]


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (("200", "application/json", '{"foo": 1}'), "HTTP 200, application/json, not the document expected"),
        (("200", "text/html", "<html>hello</html>"), "HTTP 200, text/html"),
        (("200", "application/json", "<html>"), "HTTP 200, application/json, not JSON"),
        (("200", "application/json", '{"executions": 3, "execution": [1], "id": 1, "entries": null}'),
         "HTTP 200, application/json, not the document expected"),
        (("404", "text/html", "<h1>Not Found</h1>"), "HTTP 404, text/html"),
        (("502", "text/html; charset=utf-8", "<h1>Bad gateway</h1>"), "HTTP 502, text/html"),
        (("404", "application/json", '{"detail": "Not Found"}'), "HTTP 404, application/json, not the document expected"),
    ],
)
def test_a_url_that_is_not_a_kestra_trio_server_is_one_line_and_exit_3(answer: tuple, detail: str) -> None:
    with fake_server(*answer) as url:
        for command in COMMANDS:
            result = cli(*command, "--server", url)
            expected = f"kestra-trio: error: {url} does not answer like a kestra-trio server ({detail})\n"
            assert (result.returncode, result.stderr, result.stdout) == (3, expected, ""), command


def test_a_server_that_never_answers_says_so(tmp_path: Path) -> None:
    with fake_server("silent") as url:
        result = cli("execution", "list", env={"KESTRA_TRIO_SERVER": url})
    assert result.returncode == 3
    assert result.stderr == f"kestra-trio: error: cannot reach the server at {url}: no answer within 30 s\n"
