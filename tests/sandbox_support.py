"""Helpers for restricted-mode tests (tests/sandbox, tests/plugin_runtime): the real
`kestra-trio`, real bubblewrap and a real Docker engine. Where one is missing the tests that
need it are skipped, and the skip says why."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).with_name("kestra-trio"))
TEST_IMAGE = "kestra-trio-test-busybox:1"
BUSYBOX_APPLETS = ("sh", "echo", "cat", "sleep", "ls", "dd", "id", "env", "printf", "wget", "true", "false", "kill", "head", "yes", "seq", "touch", "rm", "mkdir", "ln", "test", "[", "setsid", "tr", "wc")


def _bwrap_problem() -> str | None:
    path = shutil.which("bwrap")
    if path is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    done = subprocess.run([path, "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "/bin/true"], capture_output=True)
    if done.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {done.stderr.decode(errors='replace').strip()}"
    return None


BWRAP_PROBLEM = _bwrap_problem()
needs_bwrap = pytest.mark.skipif(BWRAP_PROBLEM is not None, reason=BWRAP_PROBLEM or "")


def _docker_problem() -> str | None:
    if shutil.which("docker") is None:
        return "the docker client is not installed (apt-get install docker.io)"
    done = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, timeout=30)
    if done.returncode != 0:
        return f"no Docker engine answers ({done.stderr.decode(errors='replace').strip().splitlines()[-1:]})"
    return None


def build_docker_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A busybox-static image made with `docker import` (no registry needed)."""
    problem = _docker_problem()
    if problem:
        pytest.skip(f"docker tests need a Docker engine: {problem}")
    if subprocess.run(["docker", "image", "inspect", TEST_IMAGE], capture_output=True).returncode == 0:
        return TEST_IMAGE
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("docker tests need busybox-static to build their image (apt-get install busybox-static)")
    root = tmp_path_factory.mktemp("rootfs")
    for folder in ("bin", "tmp", "etc", "proc", "sys", "dev"):
        (root / folder).mkdir()
    shutil.copy(busybox, root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    archive = root.parent / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        for entry in sorted(root.iterdir()):
            tar.add(entry, arcname=entry.name)
    subprocess.run(["docker", "import", str(archive), TEST_IMAGE], check=True, capture_output=True, timeout=120)
    return TEST_IMAGE


def kt(*args: str, db: Path, env: dict[str, str] | None = None, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [CLI, *args, "--db", str(db)], capture_output=True, text=True, timeout=timeout, env=full_env, **kwargs
    )


def write(folder: Path, text: str, name: str = "wf.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def rows(db: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(db, timeout=10) as conn:
        return conn.execute(sql, params).fetchall()


def run_json(tmp_path: Path, workflow: str, *, env: dict[str, str] | None = None, timeout: float = 120) -> tuple[dict, Path]:
    """Run a workflow with --json; the payload and the database path."""
    db = tmp_path / "k.db"
    path = write(tmp_path, workflow)
    result = kt("run", str(path), "--json", db=db, env=env, timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout), db


def task_logs(db: Path, execution_id: str, task_id: str) -> list[tuple[str, str, str]]:
    """(level, source, message) of one task, in order."""
    return rows(
        db, "SELECT level, source, message FROM execution_logs WHERE execution_id = ? AND task_id = ? ORDER BY id",
        execution_id, task_id,
    )


def all_stored_text(db: Path) -> str:
    """Every text the database holds (logs, task runs, audit): a leaked secret would be here."""
    parts = []
    with sqlite3.connect(db) as conn:
        for table in ("execution_logs", "task_runs", "task_attempts", "execution_audit_events", "sandbox_refusals"):
            for row in conn.execute(f"SELECT * FROM {table}"):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


def refusals(db: Path, execution_id: str) -> list[tuple[str, str, str]]:
    return rows(db, "SELECT task_id, kind, target FROM sandbox_refusals WHERE execution_id = ? ORDER BY id", execution_id)


class _Hello(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_servers(count: int, body: bytes) -> Iterator[list[int]]:
    """`count` HTTP servers on 127.0.0.1 answering every GET with `body`; their ports."""
    handler = type("Hello", (_Hello,), {"body": body})
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(count)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield [server.server_address[1] for server in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def wait_for_line(db: Path, message: str, timeout: float = 60.0) -> None:
    """Until a log line with exactly `message` is committed (the engine may not even have made
    the schema yet)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            if db.exists() and rows(db, "SELECT 1 FROM execution_logs WHERE message = ?", message):
                return
        except sqlite3.OperationalError:
            pass
        assert time.monotonic() < deadline, f"no log line {message!r} within {timeout:g} s"
        time.sleep(0.05)
