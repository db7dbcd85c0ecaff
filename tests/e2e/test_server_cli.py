"""`kestra-trio server` as a real subprocess on 127.0.0.1 port 0, a real HTTP client, real
signals: starts over HTTP, SSE follow, the remote CLI, the token rule, and the SIGTERM drain."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow  # starts the real CLI and its processes (--quick skips it)

CLI = str(Path(sys.executable).with_name("kestra-trio"))
ENV = {**os.environ, "NO_COLOR": "1"}
ENV.pop("KESTRA_TRIO_SERVER", None)
ENV.pop("KESTRA_TRIO_TOKEN", None)

WORKFLOW = """
id: hello
inputs:
  - {name: count, type: integer, default: 2}
tasks:
  - id: say
    type: core/shell.run
    inputs:
      command: 'for i in $(seq 1 $N); do echo "line $i"; sleep 0.1; done'
      env: {N: "{{ inputs.count }}"}
"""


class Server:
    def __init__(self, proc: subprocess.Popen, url: str, db: Path) -> None:
        self.proc = proc
        self.url = url
        self.db = db
        self.client = httpx.Client(base_url=url, timeout=60)

    def start(self, **inputs) -> str:
        response = self.client.post("/api/v1/executions", json={"workflow": "hello", "inputs": inputs})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def state(self, execution_id: str) -> str:
        return self.client.get(f"/api/v1/executions/{execution_id}").json()["execution"]["state"]

    def wait_state(self, execution_id: str, states: tuple[str, ...], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while (state := self.state(execution_id)) not in states:
            assert time.monotonic() < deadline, f"{execution_id} still {state}"
            time.sleep(0.05)
        return state


@contextmanager
def running_server(tmp_path: Path, *args: str) -> Iterator[Server]:
    (tmp_path / "wf").mkdir(exist_ok=True)
    (tmp_path / "wf" / "hello.yaml").write_text(WORKFLOW)
    db = tmp_path / "k.db"
    proc = subprocess.Popen(
        [CLI, "server", "--workflows", str(tmp_path / "wf"), "--port", "0", "--db", str(db), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until it listens (or exits)
        assert line.startswith("kestra-trio server listening on http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() is not None else "")
        server = Server(proc, line.split()[-1], db)
        with server.client:
            yield server
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
        for pipe in (proc.stdout, proc.stderr):
            pipe.close()


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, env={**ENV, **(env or {})}, timeout=120)


def test_start_follow_and_remote_cli_then_sigterm_exits_0(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        execution_id = server.start(count=3)
        with server.client.stream("GET", f"/api/v1/executions/{execution_id}/logs/follow") as response:
            text = "".join(response.iter_text())
        assert "line 1" in text and "line 3" in text
        assert text.rstrip().endswith('event: end\ndata: {"state": "SUCCESS"}')

        remote = {"KESTRA_TRIO_SERVER": server.url}
        started = cli("execution", "start", "hello", "--input", "count=1", "--wait", env=remote)
        assert started.returncode == 0, started.stderr
        assert "line 1" in started.stdout and started.stdout.strip().endswith("finished: SUCCESS")
        refused = cli("execution", "start", "hello", "--input", "count=x", env=remote)
        assert refused.returncode == 2 and "input 'count' must be an integer" in refused.stderr
        for args in (["execution", "list", "--json"], ["execution", "logs", execution_id],
                     ["execution", "inspect", execution_id], ["execution", "inspect", execution_id, "--task", "say"],
                     ["execution", "logs", execution_id, "--level", "warn,error"], ["execution", "logs", "nope-nope"],
                     ["execution", "cancel", execution_id, "--wait", "0"], ["execution", "cancel", "nope-nope"]):
            local = cli(*args, "--db", str(server.db))
            over_http = cli(*args, "--server", server.url)
            assert (over_http.returncode, over_http.stdout, over_http.stderr) == (local.returncode, local.stdout, local.stderr), args

        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
        assert "stopped" in server.proc.stderr.read()


def test_sigterm_drains_then_cancels_with_server_shutdown_and_queued_runs_stay_queued(tmp_path: Path) -> None:
    with running_server(tmp_path, "--drain-timeout", "1s", "--max-parallel", "1") as server:
        quick = server.start(count=2)
        server.wait_state(quick, ("RUNNING",))
        slow = server.client.post("/api/v1/executions", json={"workflow": "hello", "inputs": {"count": 600}}).json()["id"]
        server.wait_state(quick, ("SUCCESS",))
        server.wait_state(slow, ("RUNNING",))
        queued = server.start(count=1)  # --max-parallel 1: waits behind `slow`
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while (refused := server.client.post("/api/v1/executions", json={"workflow": "hello"})).status_code != 503:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert refused.json()["error"] == "shutting_down"
        assert server.proc.wait(timeout=60) == 0
    with sqlite3.connect(server.db) as conn:
        states = dict(conn.execute("SELECT id, state FROM executions").fetchall())
        message = conn.execute("SELECT message FROM execution_logs WHERE execution_id = ? ORDER BY id DESC LIMIT 1",
                               (slow,)).fetchone()[0]
    assert states[slow] == "CANCELLED" and "server shutdown" in message
    assert states[queued] == "QUEUED"  # the next start runs it
    assert states[quick] == "SUCCESS"


def test_a_second_signal_forces_the_stop_and_exits_143(tmp_path: Path) -> None:
    with running_server(tmp_path, "--drain-timeout", "10m") as server:
        slow = server.start(count=600)
        server.wait_state(slow, ("RUNNING",))
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while server.client.get("/health").status_code != 503:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 143
    with sqlite3.connect(server.db) as conn:
        assert conn.execute("SELECT state FROM executions WHERE id = ?", (slow,)).fetchone() == ("CANCELLED",)


@pytest.mark.parametrize("value", ["0", "-1", "1025"])
def test_max_body_outside_its_range_is_one_line_that_says_the_range(tmp_path: Path, value: str) -> None:
    refused = cli("server", "--port", "0", "--max-body", value, "--db", str(tmp_path / "k.db"))
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == f"kestra-trio: error: --max-body must be more than 0 and at most 1024 (MiB), got {value}\n"
    assert not (tmp_path / "k.db").exists()


def test_a_non_loopback_host_needs_a_token_first(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    refused = cli("server", "--host", "0.0.0.0", "--port", "0", "--db", str(db))
    assert refused.returncode == 2
    assert "not a loopback address and no API token exists" in refused.stderr and "Traceback" not in refused.stderr
    created = cli("server", "token", "create", "ci", "--db", str(db))
    token = created.stdout.strip()
    assert created.returncode == 0 and token.startswith("kt_")
    with sqlite3.connect(db) as conn:
        assert token not in json.dumps(conn.execute("SELECT * FROM api_tokens").fetchall())
    listed = cli("server", "token", "list", "--json", "--db", str(db))
    [entry] = json.loads(listed.stdout)
    assert entry["name"] == "ci" and entry["revoked_at"] is None
    with running_server(tmp_path) as server:
        assert server.client.get("/api/v1/executions").status_code == 401
        remote = {"KESTRA_TRIO_SERVER": server.url}
        assert cli("execution", "list", env=remote).returncode == 2
        assert cli("execution", "list", env={**remote, "KESTRA_TRIO_TOKEN": token}).returncode == 0
        assert cli("server", "token", "revoke", entry["id"], "--db", str(db)).returncode == 0
        assert cli("execution", "list", env={**remote, "KESTRA_TRIO_TOKEN": token}).returncode == 2
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0


TICK = """
id: tick
triggers:
  - {id: every-second, type: cron, cron: "* * * * * *"}
tasks:
  - id: at
    type: core/shell.run
    inputs: {command: 'echo "scheduled {{ trigger.scheduled_at }} by {{ trigger.type }}"'}
"""

FOLLOW = """
id: after-tick
triggers:
  - {id: on-tick, type: flow, workflow: tick, states: [SUCCESS]}
tasks:
  - id: said
    type: core/shell.run
    inputs: {command: 'echo "after {{ trigger.execution_id }}"'}
"""


def test_the_server_fires_cron_and_flow_triggers_and_a_restart_fires_nothing_twice(tmp_path: Path) -> None:
    """The scheduling half runs inside `kestra-trio server`: a 6-field every-second cron trigger
    fires, each of its successes starts the flow-triggered workflow once; after SIGTERM and a
    restart on the same database no fire time and no upstream execution is used twice."""
    (tmp_path / "wf").mkdir()
    (tmp_path / "wf" / "tick.yaml").write_text(TICK)
    (tmp_path / "wf" / "after.yaml").write_text(FOLLOW)

    def executions(server: Server, workflow: str) -> list[dict]:
        return server.client.get("/api/v1/executions", params={"workflow": workflow, "limit": 1000}).json()["executions"]

    for _ in range(2):  # the second start is the restart
        with running_server(tmp_path) as server:
            seen = len(executions(server, "tick"))
            deadline = time.monotonic() + 60
            while len([e for e in executions(server, "tick") if e["state"] == "SUCCESS"]) < seen + 3:
                assert time.monotonic() < deadline, executions(server, "tick")
                time.sleep(0.2)
            detail = server.client.get("/api/v1/workflows/tick").json()
            assert len(detail["triggers"][0]["next_fire_times"]) == 3
            server.proc.send_signal(signal.SIGTERM)
            assert server.proc.wait(timeout=60) == 0

    with sqlite3.connect(tmp_path / "k.db") as db:
        fired = db.execute("SELECT json_extract(trigger_data, '$.scheduled_at') FROM executions WHERE workflow_id = 'tick'").fetchall()
        followed = db.execute(
            "SELECT json_extract(trigger_data, '$.execution_id') FROM executions WHERE workflow_id = 'after-tick'"
        ).fetchall()
        successes = {i for (i,) in db.execute("SELECT id FROM executions WHERE workflow_id = 'tick' AND state = 'SUCCESS'")}
        said = [m for (m,) in db.execute("SELECT message FROM execution_logs WHERE task_id = 'at' AND source LIKE 'plugin:%'")]
    assert len(fired) >= 6 and len(set(fired)) == len(fired), fired  # every fire time once
    assert followed and len(set(followed)) == len(followed) and {i for (i,) in followed} <= successes
    assert all(m.startswith("scheduled ") and m.endswith(" by cron") for m in said), said[:3]


SLOW = """
id: slow
concurrency: {limit: 1, behavior: queue}
inputs:
  - {name: n, type: integer}
  - {name: seconds, type: integer, default: 0}
tasks:
  - id: work
    type: core/shell.run
    inputs:
      command: 'echo "start $N"; sleep $S; echo "done $N"'
      env: {N: "{{ inputs.n }}", S: "{{ inputs.seconds }}"}
"""


def test_a_server_that_cannot_bind_its_port_claims_nothing_and_the_next_start_runs_the_queued_run_once(
    tmp_path: Path,
) -> None:
    """The port is bound before anything claims, fires or writes: a start refused for a taken
    port leaves a QUEUED run untouched (no worker, no task started), and the next start runs it."""
    (tmp_path / "wf").mkdir()
    (tmp_path / "wf" / "slow.yaml").write_text(SLOW)
    with running_server(tmp_path, "--drain-timeout", "0s") as server:
        def start(n: int, seconds: int) -> str:
            response = server.client.post("/api/v1/executions", json={"workflow": "slow", "inputs": {"n": n, "seconds": seconds}})
            assert response.status_code == 201, response.text
            return response.json()["id"]

        first = start(1, 600)
        server.wait_state(first, ("RUNNING",))
        queued = start(2, 0)  # concurrency limit 1: waits behind `first`
        assert server.state(queued) == "QUEUED"
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
    db = tmp_path / "k.db"

    def queued_row() -> tuple:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT state, worker_id, started_at FROM executions WHERE id = ?", (queued,)).fetchone()

    def started_lines() -> list[str]:
        with sqlite3.connect(db) as conn:
            return [m for (m,) in conn.execute(
                "SELECT message FROM execution_logs WHERE execution_id = ? AND message LIKE 'start %'", (queued,))]

    assert queued_row() == ("QUEUED", None, None)

    with socket.socket() as holder:  # another process's listener holds the port
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        refused = cli("server", "--workflows", str(tmp_path / "wf"), "--port", str(port), "--db", str(db))
    assert refused.returncode == 2, refused
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in refused.stderr
    assert "Traceback" not in refused.stderr and "listening" not in refused.stdout
    assert queued_row() == ("QUEUED", None, None)
    assert started_lines() == []
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM task_runs WHERE execution_id = ? AND started_at IS NOT NULL",
                            (queued,)).fetchone() == (0,)

    with running_server(tmp_path) as server:
        assert server.wait_state(queued, ("SUCCESS", "FAILED", "CANCELLED")) == "SUCCESS"
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
    assert started_lines() == ["start 2"]


def test_heads_and_query_strings_beyond_the_documented_limits_are_refused_without_echoing_them(tmp_path: Path) -> None:
    """16 KiB of request line + headers (431) and 8 KiB of path + query (414) hold also when
    the head arrives in one read; error messages repeat at most a short prefix of a name."""
    with running_server(tmp_path) as server:
        huge = "v" * 17_000
        for size in (17_000, 60_000):
            response = server.client.get("/api/v1/executions", headers={"X-Big": "v" * size})
            assert response.status_code == 431, (size, response.status_code)
            assert "vvvvvvvvvv" not in response.text
        response = server.client.get("/api/v1/executions", headers={"X-Big": "v" * 15_000})
        assert response.status_code == 200  # under the limit: served
        response = server.client.get(f"/api/v1/executions?{huge}=1")
        assert response.status_code == 414
        assert response.json()["error"] == "uri_too_long" and huge[:200] not in response.text
        name = "n" * 5_000  # under the target limit: refused as an unknown parameter, named by a prefix
        response = server.client.get(f"/api/v1/executions?{name}=1")
        assert response.status_code == 400 and response.json()["error"] == "bad_request"
        assert response.json()["message"].startswith("unknown query parameter 'nnnn") and len(response.text) < 500
        response = server.client.get("/api/v1/executions", params={"workflow": "w" * 5_000})
        assert response.status_code == 400 and len(response.text) < 500
        response = server.client.get("/" + "p" * 7_000)
        assert response.status_code == 404 and len(response.text) < 500
        assert server.client.get("/health").status_code == 200  # the server still serves
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
        assert "Traceback" not in server.proc.stderr.read()


HOOK2 = r"""
id: hook2
inputs:
  - {name: n, type: integer, default: 1}
triggers:
  - {id: a, type: webhook, key: "escaped-key-\x41BCDEFGHIJKLMNOP"}
  - {id: b, type: webhook, key: 'quoted-key-it''s-1234567890'}
tasks:
  - {id: say, type: core/shell.run, inputs: {command: "echo hook"}}
"""


def test_webhook_keys_and_credential_headers_never_come_back_and_errors_are_ours(tmp_path: Path) -> None:
    (tmp_path / "wf").mkdir()
    (tmp_path / "wf" / "hook2.yaml").write_text(HOOK2)
    with running_server(tmp_path) as server:
        fired = server.client.post("/api/v1/webhooks/hook2/escaped-key-ABCDEFGHIJKLMNOP", json={"ref": "main"},
                                   headers={"X-Gitlab-Token": "glt-supersecret", "X-Hub-Signature-256": "sha256=ab"})
        assert fired.status_code == 201, fired.text
        assert server.client.post("/api/v1/webhooks/hook2/quoted-key-it's-1234567890", json={}).status_code == 201
        execution_id = fired.json()["id"]
        server.wait_state(execution_id, ("SUCCESS",))
        execution = server.client.get(f"/api/v1/executions/{execution_id}")
        assert execution.json()["execution"]["trigger_data"]["headers"]["x-gitlab-token"] == "***SECRET***"
        assert execution.json()["execution"]["trigger_data"]["headers"]["x-hub-signature-256"] == "sha256=ab"
        detail = server.client.get("/api/v1/workflows/hook2").text
        revisions = server.client.get("/api/v1/workflows/hook2/revisions").text
        for text in (execution.text, detail, revisions):
            for secret in ("glt-supersecret", "escaped-key", "quoted-key", "ABCDEFGHIJKLMNOP"):
                assert secret not in text, secret
        huge = server.client.post("/api/v1/webhooks/hook2/escaped-key-ABCDEFGHIJKLMNOP",
                                  content=b'{"n": %s}' % (b"9" * 5000), headers={"content-type": "application/json"})
        assert (huge.status_code, huge.json()["message"]) == (400, "the body is not valid JSON: a number has too many digits (at most 4,300)")
        restart = server.client.post(f"/api/v1/executions/{execution_id}/restart", json={"from_task": "nope"})
        assert (restart.status_code, restart.json()["message"]) == (422, "from_task: no task 'nope' in the workflow's tasks; its tasks: say")
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
        log = server.proc.stderr.read()
        assert "glt-supersecret" not in log and "escaped-key" not in log and "quoted-key" not in log
