"""`kestra-trio workflow …` and revisions through the installed entry point, as a user runs them."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts the real CLI or engine and its processes (--quick skips it)

CLI = str(Path(sys.executable).with_name("kestra-trio"))

HELLO = """\
id: hello
namespace: team
tasks:
  - id: say
    type: core/shell.run
    inputs: {command: "echo hello"}
"""


def kt(*args: str, db: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args, "--db", str(db)], capture_output=True, text=True, timeout=timeout, env={**os.environ, "NO_COLOR": "1"}
    )


def rows(db: Path, sql: str, *params):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def test_apply_numbers_revisions_and_an_unchanged_file_is_not_one(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    flows = tmp_path / "flows"
    (flows / "nested").mkdir(parents=True)
    (flows / "hello.yaml").write_text(HELLO)
    (flows / "nested" / "other.yml").write_text(HELLO.replace("id: hello", "id: other"))
    (flows / "notes.txt").write_text("not a workflow")
    first = kt("workflow", "apply", str(flows), db=db)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"{flows / 'hello.yaml'}: hello revision 1 (new workflow)",
        f"{flows / 'nested' / 'other.yml'}: other revision 1 (new workflow)",
    ]
    again = kt("workflow", "apply", str(flows / "hello.yaml"), db=db)
    assert again.stdout == f"{flows / 'hello.yaml'}: hello unchanged (revision 1)\n"
    (flows / "hello.yaml").write_text(HELLO.replace("echo hello", "echo hello again"))
    changed = kt("workflow", "apply", str(flows / "hello.yaml"), db=db)
    assert changed.stdout == f"{flows / 'hello.yaml'}: hello revision 2 (was 1)\n"

    listing = json.loads(kt("workflow", "list", "--json", db=db).stdout)
    assert [(w["id"], w["namespace"], w["revision"], w["enabled"], w["task_count"]) for w in listing] == [
        ("hello", "team", 2, True, 1), ("other", "team", 1, True, 1),
    ]
    table = kt("workflow", "list", db=db).stdout.splitlines()
    assert table[0].split() == ["ID", "NAMESPACE", "REVISION", "ENABLED", "TASKS", "UPDATED", "(UTC)"]
    history = kt("workflow", "history", "hello", db=db)
    assert [line.split()[0] for line in history.stdout.splitlines()[1:]] == ["1", "2"] and "(latest)" in history.stdout
    assert kt("workflow", "show", "hello", "--revision", "1", db=db).stdout == HELLO
    assert "echo hello again" in kt("workflow", "show", "hello", db=db).stdout
    shown = json.loads(kt("workflow", "show", "hello", "--json", db=db).stdout)
    assert shown["revision"] == 2 and len(shown["sha256"]) == 64 and shown["source_path"] == str(flows / "hello.yaml")


def test_an_invalid_file_stores_nothing_and_says_why(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    good = tmp_path / "good.yaml"
    good.write_text(HELLO)
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\ntasks:\n  - id: a\n    type: core/shel.run\n")
    result = kt("workflow", "apply", str(good), str(bad), db=db)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{bad}:4:11 tasks[0].type: unknown task type 'core/shel.run'")
    assert lines[-1] == "kestra-trio: error: 1 file invalid (problems above); nothing was applied"
    assert result.stdout == ""
    assert kt("workflow", "list", "--json", db=db).stdout == "[]\n"
    duplicate = tmp_path / "dup.yaml"
    duplicate.write_text(HELLO)
    twice = kt("workflow", "apply", str(good), str(duplicate), db=db)
    assert twice.returncode == 2 and f"workflow id 'hello' is also defined in {good}" in twice.stderr


def test_unknown_workflow_or_revision_is_one_line_and_exit_1(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    for args in (["show", "nope"], ["history", "nope"], ["enable", "nope"], ["disable", "nope"]):
        result = kt("workflow", *args, db=db)
        assert result.returncode == 1, args
        assert result.stderr == "kestra-trio: error: Workflow not found: nope (`kestra-trio workflow list` shows the registry)\n"
    (tmp_path / "hello.yaml").write_text(HELLO)
    kt("workflow", "apply", str(tmp_path / "hello.yaml"), db=db)
    missing = kt("workflow", "show", "hello", "--revision", "5", db=db)
    assert (missing.returncode, missing.stderr) == (
        1, "Workflow hello has no revision 5 (revisions 1 to 1; `kestra-trio workflow history hello`)\n",
    )


def test_every_run_records_its_revision_and_inspect_shows_it(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    path = tmp_path / "hello.yaml"
    path.write_text(HELLO)
    assert kt("run", str(path), db=db).returncode == 0
    path.write_text(HELLO.replace("echo hello", "echo changed"))
    assert kt("run", str(path), db=db).returncode == 0
    assert kt("run", str(path), db=db).returncode == 0  # same text: same revision
    executions = rows(db, "SELECT id, workflow_revision FROM executions ORDER BY created_at")
    assert [revision for _, revision in executions] == [1, 2, 2]
    last = executions[-1][0]
    text = kt("execution", "inspect", last, db=db).stdout
    assert "Revision     2 (kestra-trio workflow show hello --revision 2)" in text
    document = json.loads(kt("execution", "inspect", last, "--json", db=db).stdout)
    assert document["execution"]["workflow_revision"] == 2
    audit = [e["event_type"] for e in document["audit_events"]]
    assert audit[:4] == ["CREATED", "QUEUED", "STATE_CHANGE", "STARTED"]
    assert document["audit_events"][2]["metadata"]["from_state"] == "QUEUED"


def test_a_disabled_workflow_does_not_run_until_enabled(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    path = tmp_path / "hello.yaml"
    path.write_text(HELLO)
    kt("workflow", "apply", str(path), db=db)
    assert kt("workflow", "disable", "hello", db=db).stdout == "Workflow hello disabled\n"
    assert kt("workflow", "disable", "hello", db=db).stdout == "Workflow hello is already disabled\n"
    refused = kt("run", str(path), db=db)
    assert refused.returncode == 2
    assert refused.stderr.endswith("workflow 'hello' is disabled in the registry; `kestra-trio workflow enable hello` to run it\n")
    assert rows(db, "SELECT COUNT(*) FROM executions") == [(0,)]
    assert json.loads(kt("workflow", "list", "--json", db=db).stdout)[0]["enabled"] is False
    assert kt("workflow", "enable", "hello", db=db).stdout == "Workflow hello enabled\n"
    assert kt("run", str(path), db=db).returncode == 0
