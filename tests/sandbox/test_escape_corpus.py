"""The escape corpus: each case is a task of a restricted (bubblewrap) workflow that tries to
get out, run through the real `kestra-trio run`. Each asserts the refusal and that the
engine recorded it: the task's state and reason, its logged lines, and for network and
resource refusals a `sandbox_refusals` row and a WARN line naming what was refused.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from sandbox_support import all_stored_text, http_servers, kt, needs_bwrap, refusals, run_json, task_logs, wait_for_line, write

pytestmark = [needs_bwrap, pytest.mark.slow]


def restricted(tasks: str, permissions: str = "") -> str:
    return f"id: escape\nsecurity: restricted\n{permissions}\ntasks:\n{tasks}"


def messages(db: Path, execution_id: str, task_id: str) -> str:
    return "\n".join(message for _, _, message in task_logs(db, execution_id, task_id))


def test_reading_the_database_and_its_wal_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    payload, _ = run_json(tmp_path, restricted(f"""
  - id: steal
    type: core/shell.run
    inputs: {{command: "cat {db} {db}-wal {db}-shm"}}
"""))
    task = payload["tasks"]["steal"]
    assert (task["state"], task["reason_code"]) == ("FAILED", "PLUGIN_FAILED")
    logged = messages(db, payload["execution_id"], "steal")
    assert f"cat: {db}: No such file or directory" in logged
    assert f"cat: {db}-wal: No such file or directory" in logged
    assert "SQLite format" not in all_stored_text(db)


def test_home_and_its_ssh_keys_are_not_visible(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("PRIVATE-KEY-MARKER\n")
    payload, db = run_json(tmp_path, restricted(f"""
  - id: steal
    type: core/shell.run
    inputs: {{command: "echo home=$HOME; ls -a ~; cat {home}/.ssh/id_rsa"}}
"""), env={"HOME": str(home)})
    assert payload["tasks"]["steal"]["state"] == "FAILED"
    logged = messages(db, payload["execution_id"], "steal")
    assert f"cat: {home}/.ssh/id_rsa: No such file or directory" in logged
    assert f"home={home}" not in logged  # HOME is the task's own work folder
    assert "PRIVATE-KEY-MARKER" not in all_stored_text(db)


def test_the_engines_environment_is_not_visible(tmp_path: Path) -> None:
    marker = "engine-only-7f3a9"
    payload, db = run_json(tmp_path, restricted("""
  - id: look
    type: core/shell.run
    inputs: {command: "env; echo pid1=$(tr '\\\\0' ' ' < /proc/1/environ); for p in /proc/[0-9]*; do cat $p/environ; done; echo marker=[$ENGINE_ONLY_MARKER]"}
""", "permissions: {env: [ALLOWED_NAME]}"), env={"ENGINE_ONLY_MARKER": marker, "ALLOWED_NAME": "passed-through"})
    assert payload["tasks"]["look"]["state"] == "SUCCESS"
    logged = messages(db, payload["execution_id"], "look")
    assert "marker=[]" in logged
    assert "ALLOWED_NAME=passed-through" in logged  # permissions.env names do get through
    assert marker not in all_stored_text(db)


def test_proc_shows_only_the_sandbox(tmp_path: Path) -> None:
    payload, db = run_json(tmp_path, restricted("""
  - id: look
    type: core/shell.run
    inputs: {command: "ls /proc | grep -c '^[0-9]'; cat /proc/1/cmdline | tr '\\\\0' ' '"}
"""))
    assert payload["tasks"]["look"]["state"] == "SUCCESS"
    lines = [m for _, source, m in task_logs(db, payload["execution_id"], "look") if source.startswith("plugin:")]
    assert int(lines[0]) <= 6  # bubblewrap's init, sh, ls, grep (and the next command): not the host's hundreds
    assert "kestra-trio" not in lines[1].split("--")[-1]  # pid 1 is bubblewrap, not the engine


def test_writing_outside_the_work_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    payload, db = run_json(tmp_path, restricted(f"""
  - id: write
    type: core/shell.run
    inputs: {{command: "echo in > here.txt && cat here.txt; echo x > /usr/evil; echo x > {outside}; echo x > /tmp/private && echo tmp-ok; exit 7"}}
"""))
    task = payload["tasks"]["write"]
    assert (task["state"], task["error"]["exit_code"]) == ("FAILED", 7)
    logged = messages(db, payload["execution_id"], "write")
    assert "in" in logged.splitlines() and "tmp-ok" in logged  # its own folder and private /tmp work
    assert "/usr/evil: Read-only file system" in logged
    assert f"{outside}: Directory nonexistent" in logged or f"{outside}: No such file" in logged
    assert not outside.exists() and not Path("/tmp/private").exists()


def test_a_planted_symlink_leads_nowhere_and_the_engine_does_not_follow_it(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    plugin = tmp_path / "plugins" / "planter"
    plugin.mkdir(parents=True)
    (plugin / "plugin.yaml").write_text(
        "name: planter\nnamespace: t\nversion: 1.0.0\ncommand: [/bin/sh, main.sh]\nactions: [{name: go}]\n"
    )
    (plugin / "main.sh").write_text(
        f'ln -s {db} stolen.db; cat stolen.db; ln -s /etc/shadow shadow; cat shadow\n'
        # the result file is the engine's channel: make it point at a file the engine can read
        f'rm -f "$KESTRA_TRIO_RESULT_FILE"; ln -s /etc/hostname "$KESTRA_TRIO_RESULT_FILE"; exit 0\n'
    )
    path = write(tmp_path, restricted("""
  - id: plant
    type: t/planter.go
"""))
    result = kt("run", str(path), "--json", "--plugins", str(tmp_path / "plugins"), db=db)
    import json

    payload = json.loads(result.stdout)
    task = payload["tasks"]["plant"]
    assert (task["state"], task["reason_code"]) == ("FAILED", "INVALID_RESULT")
    assert "the result file cannot be read" in task["error"]["message"]
    logged = messages(db, payload["execution_id"], "plant")
    assert "cat: can't open 'stolen.db'" in logged or "stolen.db: No such file or directory" in logged
    assert "shadow: No such file or directory" in logged
    hostname = Path("/etc/hostname").read_text().strip()
    assert hostname not in str(task.get("outputs"))


@pytest.fixture
def local_servers():
    """Two HTTP servers on 127.0.0.1: the workflow allows the first only."""
    with http_servers(2, b'{"hello": "from the host"}') as ports:
        yield ports


def test_network_goes_only_to_allowed_hosts_through_the_proxy(tmp_path: Path, local_servers: list[int]) -> None:
    allowed, other = local_servers
    payload, db = run_json(tmp_path, restricted(f"""
  - id: allowed
    type: core/http.request
    inputs: {{url: "http://127.0.0.1:{allowed}/"}}
  - id: refused
    type: core/http.request
    inputs: {{url: "http://127.0.0.1:{other}/"}}
  - id: https-refused
    type: core/http.request
    inputs: {{url: "https://example.com/", timeout: 10}}
  - id: direct
    type: core/python.script
    inputs: {{script: "import socket\\ntry:\\n    socket.create_connection(('127.0.0.1', {allowed}), timeout=5)\\n    print('connected')\\nexcept OSError as exc:\\n    print('direct refused:', exc)"}}
  - id: dns
    type: core/python.script
    inputs: {{script: "import socket\\ntry:\\n    print(socket.getaddrinfo('example.com', 443))\\nexcept OSError as exc:\\n    print('dns refused:', exc)"}}
""", f'permissions: {{network: ["127.0.0.1:{allowed}"]}}'))
    tasks, execution_id = payload["tasks"], payload["execution_id"]
    assert tasks["allowed"]["state"] == "SUCCESS"
    assert tasks["allowed"]["outputs"]["body"] == {"hello": "from the host"}
    assert tasks["refused"]["state"] == "FAILED" and "403" in tasks["refused"]["error"]["message"]
    assert tasks["https-refused"]["state"] == "FAILED" and "403" in tasks["https-refused"]["error"]["message"]
    assert "direct refused" in messages(db, execution_id, "direct")  # its own network namespace
    assert "dns refused" in messages(db, execution_id, "dns")  # no resolver inside
    assert sorted(refusals(db, execution_id)) == [
        ("https-refused", "network", "example.com:443"),
        ("refused", "network", f"127.0.0.1:{other}"),
    ]
    warns = [(level, m) for level, source, m in task_logs(db, execution_id, "refused") if source == "sandbox"]
    assert warns == [("WARN", f"network access refused: GET 127.0.0.1:{other} is not in permissions.network")]


def test_without_network_permission_nothing_gets_out(tmp_path: Path, local_servers: list[int]) -> None:
    port = local_servers[0]
    payload, db = run_json(tmp_path, restricted(f"""
  - id: out
    type: core/http.request
    inputs: {{url: "http://127.0.0.1:{port}/", timeout: 5}}
"""))
    task = payload["tasks"]["out"]
    assert task["state"] == "FAILED" and "Connection refused" in task["error"]["message"]


def _limits(**values: object) -> str:
    inner = ", ".join(f"{k}: {v}" for k, v in values.items())
    return f"permissions: {{resources: {{{inner}}}}}"


def test_a_fork_bomb_ends_at_the_process_limit(tmp_path: Path) -> None:
    payload, db = run_json(tmp_path, restricted("""
  - id: bomb
    type: core/shell.run
    timeout: 60s
    inputs: {command: "f() { f | f & }; f; sleep 120"}
""", _limits(processes=32)))
    task = payload["tasks"]["bomb"]
    assert (task["state"], task["reason_code"], task["error"]["limit"]) == ("FAILED", "RESOURCE_LIMIT", "processes")
    assert "went over its processes limit (32" in task["error"]["message"]
    assert refusals(db, payload["execution_id"]) == [("bomb", "resource", "processes")]


def test_allocating_past_the_memory_limit(tmp_path: Path) -> None:
    payload, db = run_json(tmp_path, restricted("""
  - id: hog
    type: core/python.script
    inputs: {script: "data = b'x' * (400 * 2**20)\\nprint(len(data))"}
""", _limits(memory="128Mi")))
    task = payload["tasks"]["hog"]
    assert (task["state"], task["reason_code"], task["error"]["limit"]) == ("FAILED", "RESOURCE_LIMIT", "memory")
    assert "memory limit (128Mi" in task["error"]["message"]
    assert refusals(db, payload["execution_id"]) == [("hog", "resource", "memory")]


def test_filling_the_disk_past_file_size(tmp_path: Path) -> None:
    payload, db = run_json(tmp_path, restricted("""
  - id: fill
    type: core/shell.run
    inputs: {command: "dd if=/dev/zero of=big bs=1M count=50"}
""", _limits(file_size="10Mi")))
    task = payload["tasks"]["fill"]
    assert (task["state"], task["reason_code"], task["error"]["limit"]) == ("FAILED", "RESOURCE_LIMIT", "file_size")
    assert refusals(db, payload["execution_id"]) == [("fill", "resource", "file_size")]


def test_burning_cpu_past_cpu_seconds(tmp_path: Path) -> None:
    payload, db = run_json(tmp_path, restricted("""
  - id: spin
    type: core/shell.run
    timeout: 60s
    inputs: {command: "while :; do :; done"}
""", _limits(cpu_seconds=1)))
    task = payload["tasks"]["spin"]
    assert (task["state"], task["reason_code"], task["error"]["limit"]) == ("FAILED", "RESOURCE_LIMIT", "cpu_seconds")
    assert refusals(db, payload["execution_id"]) == [("spin", "resource", "cpu_seconds")]


def test_signalling_or_tracing_the_engine_fails(tmp_path: Path) -> None:
    """The task learns the engine's pid (a granted file) and tries kill -9 and ptrace on it,
    then kill -9 -1 (every process it may signal): only its own namespace is in reach."""
    shared = tmp_path / "shared"
    shared.mkdir()
    db = tmp_path / "k.db"
    script = (
        "import ctypes, os, signal, time\\n"
        f"path = '{shared}/engine.pid'\\n"
        "for _ in range(200):\\n"
        "    if os.path.exists(path) and open(path).read().strip(): break\\n"
        "    time.sleep(0.05)\\n"
        "pid = int(open(path).read())\\n"
        "try:\\n    os.kill(pid, signal.SIGKILL); print('killed the engine')\\n"
        "except OSError as exc:\\n    print('kill refused:', exc.strerror)\\n"
        "libc = ctypes.CDLL(None, use_errno=True)\\n"
        "print('ptrace', libc.ptrace(16, pid, 0, 0), os.strerror(ctypes.get_errno()))\\n"
    )
    path = write(tmp_path, restricted(f"""
  - id: attack
    type: core/python.script
    inputs: {{script: "{script}"}}
  - id: everyone
    type: core/shell.run
    needs: [attack]
    inputs: {{command: "kill -9 -1; echo still here"}}
""", f"permissions: {{filesystem: {{read: [{shared}]}}}}"))
    import json
    import os

    engine = subprocess.Popen(
        [str(Path(sys.executable).with_name("kestra-trio")), "run", str(path), "--json", "--db", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        (shared / "engine.pid").write_text(str(engine.pid))
        out, err = engine.communicate(timeout=60)
    finally:
        engine.kill()
        engine.communicate()
    payload = json.loads(out)
    logged = messages(db, payload["execution_id"], "attack")
    assert "kill refused: No such process" in logged
    assert "ptrace -1 No such process" in logged
    assert payload["tasks"]["everyone"]["state"] in ("SUCCESS", "FAILED")  # it may kill itself, nothing else
    assert payload["state"] in ("SUCCESS", "FAILED") and engine.returncode in (0, 1), err


def test_nothing_keeps_running_after_the_task_ends(tmp_path: Path) -> None:
    """setsid + closed pipes: the escaped loop dies with the sandbox's pid namespace."""
    shared = tmp_path / "shared"
    shared.mkdir()
    marker = f"beacon-{time.monotonic_ns()}"
    payload, db = run_json(tmp_path, restricted(f"""
  - id: daemon
    type: core/shell.run
    inputs: {{command: "setsid sh -c 'while true; do echo {marker} >> {shared}/beacon; sleep 0.05; done' </dev/null >/dev/null 2>&1 & sleep 0.3; echo started"}}
""", f"permissions: {{filesystem: {{write: [{shared}]}}}}"))
    assert payload["tasks"]["daemon"]["state"] == "SUCCESS"
    beacon = shared / "beacon"
    assert beacon.exists()  # it did run inside
    size = beacon.stat().st_size
    time.sleep(0.5)
    assert beacon.stat().st_size == size  # and stopped with the task
    alive = [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
    assert alive == []


def test_sigterm_reaches_the_plugin_with_its_grace_period(tmp_path: Path) -> None:
    payload, db = run_json(tmp_path, restricted("""
  - id: slow
    type: core/shell.run
    timeout: 1s
    inputs: {command: "trap 'echo got TERM, cleaning up; exit 0' TERM; echo waiting; sleep 30 & wait"}
"""))
    task = payload["tasks"]["slow"]
    assert (task["state"], task["reason_code"]) == ("FAILED", "TIMEOUT")
    logged = messages(db, payload["execution_id"], "slow")
    assert "got TERM, cleaning up" in logged
    assert task["error"]["signal"] == "SIGTERM"


def test_kill_9_of_the_engine_leaves_no_sandboxed_process(tmp_path: Path) -> None:
    marker = f"orphan-{time.monotonic_ns()}"
    db = tmp_path / "k.db"
    path = write(tmp_path, restricted(f"""
  - id: hang
    type: core/shell.run
    timeout: 60s
    inputs: {{command: "setsid sh -c 'sleep 300; echo {marker}' & echo {marker}-started; sleep 300"}}
"""))
    import os

    engine = subprocess.Popen(
        [str(Path(sys.executable).with_name("kestra-trio")), "run", str(path), "--db", str(db)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        wait_for_line(db, f"{marker}-started")
        sandboxed = [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
        assert sandboxed  # the setsid'd sleeper and the task's shell
    finally:
        engine.kill()
        engine.wait()
    gone, alive = psutil.wait_procs(sandboxed, timeout=10)
    assert alive == []
