"""What a restricted task is allowed (SandboxPolicy), bubblewrap's options, the start checks,
and how inspect shows it — pure parts, no sandbox started."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rich.console import Console

from kestra_trio.cli.sandbox_view import sandbox_view
from kestra_trio.errors import SandboxUnavailable
from kestra_trio.model.loading import load_workflow_text
from kestra_trio.plugin_runtime.bwrap import bwrap_argv, sandbox_env
from kestra_trio.plugin_runtime.sandbox import DEFAULT_MEMORY, DEFAULT_PROCESSES, SandboxPolicy, check_paths, explain
from kestra_trio.storage.sandbox import RefusalRow, SandboxRows

WORKFLOW = """
id: w
security: restricted
image: busybox:1
permissions:
  network: [api.example.com]
  filesystem: {read: [/srv/in/], write: [/srv/out]}
  env: [LANG]
  resources: {memory: 64Mi}
tasks:
  - {id: a, type: core/shell.run, inputs: {command: "true"}}
  - {id: b, type: core/shell.run, sandbox: docker, inputs: {command: "true"}}
"""


def test_policy_per_task_with_defaults() -> None:
    workflow = load_workflow_text(WORKFLOW)
    a = SandboxPolicy.for_task(workflow, workflow.task("a"))
    b = SandboxPolicy.for_task(workflow, workflow.task("b"))
    assert a is not None and b is not None
    assert (a.kind, b.kind, b.image) == ("bubblewrap", "docker", "busybox:1")
    assert a.read == ("/srv/in",) and a.write == ("/srv/out",)
    assert (a.memory, a.processes, a.cpu_seconds) == (64 * 2**20, DEFAULT_PROCESSES, None)
    trusted = load_workflow_text("id: t\ntasks: [{id: a, type: core/shell.run, inputs: {command: x}}]")
    assert SandboxPolicy.for_task(trusted, trusted.task("a")) is None
    assert explain(trusted) == []
    assert DEFAULT_MEMORY == 2**30


def test_bwrap_options_bind_only_what_is_granted(tmp_path: Path) -> None:
    workflow = load_workflow_text(WORKFLOW)
    policy = SandboxPolicy.for_task(workflow, workflow.task("a"))
    assert policy is not None
    argv = bwrap_argv(
        policy, bwrap="/usr/bin/bwrap", etc=tmp_path / "etc", work=tmp_path / "work", control=tmp_path / "control",
        plugin_dir=Path("/plugins/shell"), cwd=None, info_fd=5, block_fd=6,
    )
    pairs = {(argv[i], argv[i + 1], argv[i + 2]) for i in range(len(argv) - 2) if argv[i].endswith("bind")}
    assert ("--ro-bind", "/srv/in", "/srv/in") in pairs and ("--bind", "/srv/out", "/srv/out") in pairs
    assert ("--ro-bind", "/plugins/shell", "/plugins/shell") in pairs
    assert ("--bind", str(tmp_path / "work"), str(tmp_path / "work")) in pairs
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"):
        assert flag in argv
    assert argv[argv.index("--uid") + 1] == "65534"
    home = os.path.expanduser("~")
    assert all(source != home for _, source, _ in pairs)
    assert argv.index("--tmpfs") < argv.index(str(tmp_path / "work"))  # a work folder under /tmp stays visible
    assert argv[-1] == "--"


def test_the_sandbox_environment_is_chosen_not_inherited(tmp_path: Path) -> None:
    workflow = load_workflow_text(WORKFLOW)
    policy = SandboxPolicy.for_task(workflow, workflow.task("a"))
    assert policy is not None
    env = sandbox_env(policy, tmp_path, {"LANG": "de_DE.UTF-8", "AWS_SECRET_ACCESS_KEY": "x", "PATH": "/home/me/bin"})
    assert env == {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": "/tmp", "LANG": "de_DE.UTF-8"}


def test_start_checks_refuse_grants_that_expose_the_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "db").mkdir(parents=True)
    workflow = load_workflow_text(WORKFLOW.replace("/srv/in/", str(data)).replace("/srv/out", str(data / "db")))
    policy = SandboxPolicy.for_task(workflow, workflow.task("a"))
    assert policy is not None
    check_paths(policy, [tmp_path / "elsewhere.db"])
    with pytest.raises(SandboxUnavailable, match=r"permissions.filesystem.read: .* contains the engine's database"):
        check_paths(policy, [data / "db" / "k.db-wal"])
    missing = load_workflow_text(WORKFLOW.replace("/srv/in/", str(tmp_path / "nope")))
    with pytest.raises(SandboxUnavailable, match="does not exist"):
        check_paths(SandboxPolicy.for_task(missing, missing.task("a")), [])  # type: ignore[arg-type]


def test_inspect_shows_refused_targets_literally() -> None:
    rows = SandboxRows(
        {"a": {"runtime": "bubblewrap", "network": [], "filesystem": {"read": [], "write": []}, "env": [],
               "resources": {"memory": 2**20, "processes": 8}, "enforcement": {"memory": "RLIMIT_AS"}}},
        [RefusalRow("a", 1, 0, "network", "evil\x1b[31m.example:80", "[bold]markup[/bold] stays text")],
    )
    console = Console(width=200, color_system=None, record=True)
    for line in sandbox_view(rows):
        console.print(line)
    text = console.export_text()
    assert "evil\\x1b[31m.example:80" in text and "[bold]markup[/bold] stays text" in text
    assert "limits: memory 1Mi (RLIMIT_AS), processes 8" in text
