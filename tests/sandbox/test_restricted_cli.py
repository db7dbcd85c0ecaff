"""Restricted mode at the CLI's edges: failing at start (never unsandboxed), what `validate`
explains, and what `inspect` shows."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from sandbox_support import CLI, kt, needs_bwrap, rows, run_json, write

RESTRICTED = """
id: fenced
security: restricted
permissions:
  network: [api.example.com, "127.0.0.1:8080"]
  filesystem: {{read: [{read}]}}
  env: [LANG]
  resources: {{memory: 256Mi, processes: 64, file_size: 100Mi, cpu_seconds: 60}}
tasks:
  - id: a
    type: core/shell.run
    inputs: {{command: "echo hi"}}
"""


def cli(*args: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([CLI, *args], capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}, timeout=60)


def test_without_bubblewrap_restricted_fails_at_start_with_exit_2(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    path = write(tmp_path, RESTRICTED.format(read=tmp_path))
    empty = tmp_path / "empty-path"
    empty.mkdir()
    result = kt("run", str(path), db=db, env={"PATH": str(empty)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "kestra-trio: error: restricted mode needs bubblewrap (apt-get install bubblewrap)"
    ]
    assert not db.exists() or rows(db, "SELECT COUNT(*) FROM executions") == [(0,)]  # nothing ran


def test_a_grant_that_exposes_the_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    path = write(tmp_path, RESTRICTED.format(read=tmp_path))
    result = kt("run", str(path), db=db)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"kestra-trio: error: permissions.filesystem.read: {tmp_path} contains the engine's database ({db}); "
        "grant a narrower path or keep the database elsewhere (--db)"
    )


def test_a_missing_grant_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, RESTRICTED.format(read=tmp_path / "nope"))
    result = kt("run", str(path), db=tmp_path / "k.db")
    assert result.returncode == 2
    assert f"permissions.filesystem.read: {tmp_path / 'nope'} does not exist" in result.stderr


def test_validate_explains_what_a_restricted_workflow_may_use(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    path = write(tmp_path, RESTRICTED.format(read=data))
    result = cli("validate", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: ok"
    assert lines[1] == "  restricted: every task runs sandboxed; it may use:"
    text = result.stdout
    assert "    sandbox: bubblewrap for a" in text
    assert f"read: {data}" in text and "nothing else (not $HOME, not the database)" in text
    assert "network: only api.example.com, 127.0.0.1:8080 through the engine's proxy" in text
    assert "environment: the engine's protocol variables, LANG and the secrets each task's inputs name" in text
    assert "    memory: 256Mi (" in text and "    cpu_seconds: 60 s (" in text


def test_validate_says_nothing_more_for_trusted(tmp_path: Path) -> None:
    path = write(tmp_path, "id: t\ntasks:\n  - {id: a, type: core/shell.run, inputs: {command: 'true'}}\n")
    result = cli("validate", str(path))
    assert result.stdout.splitlines() == [f"{path}: ok"]


def test_plugin_validate_says_what_restricted_mode_gives_the_plugin() -> None:
    root = Path(__file__).resolve().parents[2]
    result = cli("plugin", "validate", str(root / "plugins" / "python"))
    assert result.returncode == 0, result.stderr
    assert "restricted mode (security: restricted): the plugin sees its own folder read-only" in result.stdout
    assert "docker: {python} is the image's python3" in result.stdout


@needs_bwrap
def test_inspect_shows_the_sandbox_the_permissions_and_the_refusals(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    payload, db = run_json(tmp_path, f"""
id: shown
security: restricted
permissions:
  network: ["127.0.0.1:9"]
  filesystem: {{write: [{shared}]}}
  resources: {{processes: 16}}
tasks:
  - id: knock
    type: core/http.request
    inputs: {{url: "http://evil.example/x", timeout: 5}}
""")
    execution_id = payload["execution_id"]
    result = kt("execution", "inspect", execution_id, db=db)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    section = text[text.index("Sandbox (security: restricted)"):]
    assert "runtime: bubblewrap" in section and "network: 127.0.0.1:9" in section
    assert f"write {shared}" in section and "processes 16 (" in section
    assert "Refusals (1)" in section
    assert "knock  attempt 1  network  evil.example:80  GET evil.example:80 is not in permissions.network" in section
    detail = json.loads(kt("execution", "inspect", execution_id, "--json", db=db).stdout)["sandbox"]
    assert detail["sandboxes"]["knock"]["resources"]["processes"] == 16
    assert [(r["task_id"], r["kind"], r["target"]) for r in detail["refusals"]] == [("knock", "network", "evil.example:80")]
