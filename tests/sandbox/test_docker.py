"""`sandbox: docker` through the real `kestra-trio run` and a real Docker engine (skipped, with
the reason, where none answers): isolation, the allow-list proxy, limits, masking, and no
container left behind — not even when the engine is killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox_support import all_stored_text, http_servers, kt, refusals, rows, run_json, task_logs, wait_for_line, write

pytestmark = pytest.mark.slow


def docker_workflow(image: str, tasks: str, permissions: str = "") -> str:
    return f"id: boxed\nsecurity: restricted\nsandbox: docker\nimage: {image}\n{permissions}\ntasks:\n{tasks}"


def containers_of(execution_id: str) -> list[str]:
    done = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=kestra-trio.execution={execution_id}"],
        capture_output=True, text=True, check=True,
    )
    return done.stdout.split()


def messages(db: Path, execution_id: str, task_id: str) -> str:
    return "\n".join(m for _, _, m in task_logs(db, execution_id, task_id))


def test_a_container_sees_only_its_work_folder_and_is_removed(tmp_path: Path, docker_image: str) -> None:
    db = tmp_path / "k.db"
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("PRIVATE-KEY-MARKER\n")
    payload, _ = run_json(tmp_path, docker_workflow(docker_image, f"""
  - id: look
    type: core/shell.run
    inputs: {{command: "id -u; echo mine > here && cat here; cat {db}; cat {home}/.ssh/id_rsa; echo x > /etc/evil; echo marker=[$ENGINE_ONLY_MARKER]; exit 5"}}
"""), env={"HOME": str(home), "ENGINE_ONLY_MARKER": "engine-only-42"})
    task = payload["tasks"]["look"]
    assert (task["state"], task["error"]["exit_code"]) == ("FAILED", 5)
    logged = messages(db, payload["execution_id"], "look")
    assert logged.splitlines()[0] != "0"  # not root in the container
    assert "mine" in logged
    assert f"cat: can't open '{db}': No such file or directory" in logged
    assert "/etc/evil: Read-only file system" in logged
    assert "marker=[]" in logged
    stored = all_stored_text(db)
    assert "PRIVATE-KEY-MARKER" not in stored and "engine-only-42" not in stored and "SQLite format" not in stored
    assert containers_of(payload["execution_id"]) == []


def test_results_and_masked_secrets_travel_like_in_the_process_runtime(tmp_path: Path, docker_image: str) -> None:
    plugin = tmp_path / "plugins" / "writer"
    plugin.mkdir(parents=True)
    (plugin / "plugin.yaml").write_text(
        "name: writer\nnamespace: t\nversion: 1.0.0\ncommand: [/bin/sh, main.sh]\nactions: [{name: go}]\n"
    )
    (plugin / "main.sh").write_text(
        'read -r message\necho "input bytes: ${#message}"\n'
        'printf \'{"outputs": {"n": 7}}\' > "$KESTRA_TRIO_RESULT_FILE"\n'
    )
    db = tmp_path / "k.db"
    path = write(tmp_path, docker_workflow(docker_image, """
  - id: write
    type: t/writer.go
  - id: secret
    type: core/shell.run
    inputs: {command: "echo token={{ secrets.TOKEN }}", env: {T: "{{ secrets.TOKEN }}"}}
"""))
    result = kt(
        "run", str(path), "--json", "--plugins", str(tmp_path / "plugins"), db=db,
        env={"KESTRA_TRIO_SECRET_TOKEN": "hunter2-docker"},
    )
    payload = json.loads(result.stdout)
    assert payload["tasks"]["write"]["outputs"] == {"n": 7}
    assert "input bytes:" in messages(db, payload["execution_id"], "write")
    assert "token=***SECRET***" in messages(db, payload["execution_id"], "secret")
    assert "hunter2-docker" not in all_stored_text(db)


@pytest.fixture
def local_server():
    with http_servers(1, b"hello through the proxy\n") as (port,):
        yield port


@pytest.mark.skipif(os.geteuid() != 0, reason="docker with permissions.network needs the engine to run as root")
def test_network_only_through_the_allow_list(tmp_path: Path, docker_image: str, local_server: int) -> None:
    payload, db = run_json(tmp_path, docker_workflow(docker_image, f"""
  - id: allowed
    type: core/shell.run
    inputs: {{command: "wget -q -O - http://127.0.0.1:{local_server}/"}}
  - id: refused
    type: core/shell.run
    inputs: {{command: "wget -q -O - http://127.0.0.1:{local_server + 1 if local_server < 65535 else 1}/"}}
  - id: direct
    type: core/shell.run
    inputs: {{command: "http_proxy= wget -q -T 3 -O - http://127.0.0.1:{local_server}/"}}
""", f'permissions: {{network: ["127.0.0.1:{local_server}"]}}'))
    tasks, execution_id = payload["tasks"], payload["execution_id"]
    assert tasks["allowed"]["state"] == "SUCCESS"
    assert "hello through the proxy" in messages(db, execution_id, "allowed")
    assert tasks["refused"]["state"] == "FAILED" and tasks["direct"]["state"] == "FAILED"
    assert [r[:2] for r in refusals(db, execution_id)] == [("refused", "network")]


def test_a_memory_hog_is_stopped_at_its_limit(tmp_path: Path, docker_image: str) -> None:
    payload, db = run_json(tmp_path, docker_workflow(docker_image, """
  - id: hog
    type: core/shell.run
    inputs: {command: "x=xxxxxxxx; while true; do x=$x$x; done"}
""", "permissions: {resources: {memory: 64Mi}}"))
    task = payload["tasks"]["hog"]
    assert (task["state"], task["reason_code"], task["error"]["limit"]) == ("FAILED", "RESOURCE_LIMIT", "memory")
    assert refusals(db, payload["execution_id"]) == [("hog", "resource", "memory")]


def test_a_fork_bomb_is_stopped_at_its_process_limit(tmp_path: Path, docker_image: str) -> None:
    payload, db = run_json(tmp_path, docker_workflow(docker_image, """
  - id: bomb
    type: core/shell.run
    timeout: 60s
    inputs: {command: "f() { f | f & }; f; sleep 120"}
""", "permissions: {resources: {processes: 32}}"))
    task = payload["tasks"]["bomb"]
    assert (task["state"], task["reason_code"], task["error"]["limit"]) == ("FAILED", "RESOURCE_LIMIT", "processes")
    assert containers_of(payload["execution_id"]) == []


def test_a_timeout_stops_then_removes_the_container(tmp_path: Path, docker_image: str) -> None:
    payload, db = run_json(tmp_path, docker_workflow(docker_image, """
  - id: slow
    type: core/shell.run
    timeout: 1s
    inputs: {command: "trap 'echo got TERM; exit 0' TERM; echo waiting; sleep 60 & wait"}
"""))
    task = payload["tasks"]["slow"]
    assert (task["state"], task["reason_code"]) == ("FAILED", "TIMEOUT")
    assert "got TERM" in messages(db, payload["execution_id"], "slow")
    assert containers_of(payload["execution_id"]) == []


def test_kill_9_of_the_engine_removes_its_containers(tmp_path: Path, docker_image: str) -> None:
    db = tmp_path / "k.db"
    path = write(tmp_path, docker_workflow(docker_image, """
  - id: hang
    type: core/shell.run
    timeout: 120s
    inputs: {command: "echo hanging; sleep 300"}
"""))
    engine = subprocess.Popen(
        [str(Path(sys.executable).with_name("kestra-trio")), "run", str(path), "--db", str(db)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        wait_for_line(db, "hanging")
        (execution_id,) = rows(db, "SELECT id FROM executions")[0]
        assert len(containers_of(execution_id)) == 1
    finally:
        engine.kill()
        engine.wait()
    deadline = time.monotonic() + 30
    while containers_of(execution_id):
        assert time.monotonic() < deadline, "the watchdog did not remove the container"
        time.sleep(0.1)


def test_no_engine_fails_at_start_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    path = write(tmp_path, docker_workflow("busybox", """
  - id: a
    type: core/shell.run
    inputs: {command: "true"}
"""))
    result = kt("run", str(path), db=db, env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"kestra-trio: error: sandbox: docker needs a Docker engine: no Docker engine answers at {tmp_path}/no.sock "
        "(No such file or directory); start dockerd, or set DOCKER_HOST=unix:///path/to/docker.sock"
    ]
    assert not db.exists() or rows(db, "SELECT COUNT(*) FROM executions") == [(0,)]
