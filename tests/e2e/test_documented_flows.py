"""The key flows docs/cli.md shows, each as its own end-to-end test of the real `kestra-trio`.

tests/test_docs_output.py checks that every example in the docs is still what the CLI prints;
these say what must hold in them, so a failure names the behaviour rather than a doc block.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts the real CLI or engine and its processes (--quick skips it)

KT = str(Path(sys.executable).with_name("kestra-trio"))
ENV = {k: v for k, v in os.environ.items() if not k.startswith("KESTRA_TRIO_") and k not in ("NO_COLOR", "FORCE_COLOR")}


def kt(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KT, *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=timeout)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_a_plugin_of_your_own_validates_and_runs_with_plugins(tmp_path: Path) -> None:
    """docs/cli.md "--plugins": a plugin folder written by hand, in a language of its own (sh)."""
    write(tmp_path, "my-plugins/greet/plugin.yaml", """
        name: greet
        namespace: acme
        version: 1.0.0
        description: Say hello.
        command: [sh, greet.sh]
        actions:
          - name: hello
            description: Print a greeting.
            input:
              type: object
              properties:
                name: {type: string}
              required: [name]
    """)
    write(tmp_path, "my-plugins/greet/greet.sh", """
        read -r message  # the input message: one line of JSON
        echo "hello from acme/greet: $message"
        echo '{"outputs": {"greeted": true}}' > "$KESTRA_TRIO_RESULT_FILE"
    """)
    write(tmp_path, "greet.yaml", """
        id: greet
        tasks:
          - id: hi
            type: acme/greet.hello
            inputs:
              name: Ada
    """)
    unknown = kt("validate", "greet.yaml", cwd=tmp_path)
    assert (unknown.returncode, unknown.stdout) == (
        1, "greet.yaml:4:11 tasks[0].type: unknown task type 'acme/greet.hello': no plugin acme/greet\n"
    )
    assert kt("validate", "greet.yaml", "--plugins", "my-plugins", cwd=tmp_path).stdout == "greet.yaml: ok\n"
    listed = [json.loads(line) for line in kt("plugin", "list", "--plugins", "my-plugins", "--json", cwd=tmp_path).stdout.splitlines()]
    assert {"type": "acme/greet.hello", "folder": str(tmp_path / "my-plugins" / "greet")}.items() <= next(
        p for p in listed if p["type"] == "acme/greet.hello"
    ).items()

    run = kt("run", "greet.yaml", "--plugins", "my-plugins", "--db", "k.db", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["state"] == "SUCCESS" and result["tasks"]["hi"]["outputs"] == {"greeted": True}
    logs = kt("execution", "logs", result["execution_id"], "--source", "plugin", "--jsonl", "--db", "k.db", cwd=tmp_path)
    [line] = [json.loads(entry) for entry in logs.stdout.splitlines()]
    assert line["source"] == "plugin:acme/greet.hello" and line["message"].startswith("hello from acme/greet: {")
    assert '"name": "Ada"' in line["message"] or '"name":"Ada"' in line["message"]  # its input, as JSON


def test_a_task_that_ignores_sigterm_is_killed_after_the_kill_grace(tmp_path: Path) -> None:
    """docs/cli.md "--kill-grace": a task timeout ends a TERM-ignoring task with SIGKILL after the grace."""
    write(tmp_path, "stubborn.yaml", """
        id: stubborn
        tasks:
          - id: ignore-term
            type: core/shell.run
            timeout: 1s
            inputs:
              command: trap '' TERM; echo started; sleep 30
    """)
    run = kt("run", "stubborn.yaml", "--kill-grace", "0.5", "--db", "k.db", "--json", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    task = json.loads(run.stdout)["tasks"]["ignore-term"]
    assert (task["state"], task["reason_code"]) == ("FAILED", "TIMEOUT")
    assert task["error"]["signal"] == "SIGKILL" and task["error"]["message"] == "task timed out after 1s"
    execution_id = json.loads(run.stdout)["execution_id"]
    [attempt] = json.loads(kt("execution", "inspect", execution_id, "--json", "--db", "k.db", cwd=tmp_path).stdout)[
        "tasks"][0]["attempts"]
    assert (attempt["state"], attempt["signal"], attempt["exit_code"]) == ("TIMED_OUT", "SIGKILL", -9)
    errors = kt("execution", "logs", execution_id, "--level", "ERROR", "--source", "worker", "--db", "k.db", cwd=tmp_path)
    assert "Task ignore-term timed out after 1s (attempt 1); sent SIGTERM, then SIGKILL (the 500ms grace period " \
           "ran out) to process group " in errors.stdout


def test_follow_a_run_inspect_it_while_it_runs_and_cancel_it_from_another_terminal(tmp_path: Path) -> None:
    """docs/cli.md "execution logs --follow" / "execution cancel": three terminals on one run."""
    write(tmp_path, "slow.yaml", """
        id: slow
        tasks:
          - id: tick
            type: core/shell.run
            inputs:
              command: echo "tick 1"; echo "tick 2"
          - id: long
            type: core/shell.run
            inputs:
              command: echo "sleeping"; sleep 60
    """)
    db = ["--db", "k.db"]
    with subprocess.Popen([KT, "run", "slow.yaml", *db], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=ENV, cwd=tmp_path) as engine:
        assert engine.stdout is not None
        execution_id = engine.stdout.readline().split()[1]  # "Execution <id> created: ..."
        with subprocess.Popen([KT, "execution", "logs", execution_id, "--follow", *db], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path) as follower:
            assert follower.stdout is not None
            followed = []
            while not followed or not followed[-1].endswith("] sleeping\n"):  # `long` runs: time to look
                followed.append(follower.stdout.readline())
                assert followed[-1], "the follower ended before `long` started"
            running = kt("execution", "inspect", execution_id, "--timeline", *db, cwd=tmp_path)
            cancel = kt("execution", "cancel", execution_id, "--reason", "not needed today", *db, cwd=tmp_path)
            rest, follow_err = follower.communicate(timeout=120)
        engine_out, _ = engine.communicate(timeout=120)

    assert running.returncode == 0, running.stderr
    assert running.stdout.startswith("Execution in progress\n") and "State        ⏳ RUNNING" in running.stdout
    timeline = running.stdout.split("Timeline\n", 1)[1].splitlines()
    assert timeline[0].rstrip().endswith("(now)") and any(line.startswith("long ") for line in timeline)

    assert cancel.stdout == f"Cancel requested for execution {execution_id}\nExecution {execution_id} cancelled\n"
    assert (follower.returncode, follow_err) == (0, "")  # the follow ends with the execution
    lines = "".join(followed).splitlines() + rest.splitlines()
    assert any("[WARN] [scheduler] Cancellation requested by user: not needed today" in line for line in lines)
    assert "[WARN] [scheduler] Execution cancelled in " in lines[-1] and "not needed today" in lines[-1]
    assert engine.returncode == 1 and f"Execution {execution_id} CANCELLED in " in engine_out
