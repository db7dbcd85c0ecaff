"""The engine end to end: real SQLite file, real plugin processes (no autojump: real pipes)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest
import psutil

from kestra_trio.state.states import State

pytestmark = pytest.mark.slow  # starts the real CLI or engine and its processes (--quick skips it)


def marker_command(tmp, name, seconds=0.3):
    """Shell that records start/end times, to check order and parallelism from the outside."""
    return f'echo "$(date +%s%N) start {name}" >> {tmp}/trace; sleep {seconds}; echo "$(date +%s%N) end {name}" >> {tmp}/trace'


def intervals(tmp):
    spans = {}
    for line in (tmp / "trace").read_text().splitlines():
        ts, kind, name = line.split()
        spans.setdefault(name, {})[kind] = int(ts)
    return spans


async def test_dag_order_and_parallelism_bound(engine, tmp_path):
    branches = "\n".join(
        f"""
  - id: b{i}
    type: core/shell.run
    needs: [root]
    inputs: {{command: '{marker_command(tmp_path, f"b{i}")}'}}"""
        for i in range(6)
    )
    result = await engine.run(
        f"""
id: dag
tasks:
  - id: root
    type: core/shell.run
    inputs: {{command: '{marker_command(tmp_path, "root", 0.05)}'}}
{branches}
  - id: join
    type: core/shell.run
    needs: [b0, b1, b2, b3, b4, b5]
    inputs: {{command: '{marker_command(tmp_path, "join", 0.05)}'}}
""",
        max_parallel=3,
    )
    assert result.state == State.SUCCESS
    spans = intervals(tmp_path)
    branch_names = [f"b{i}" for i in range(6)]
    assert all(spans[b]["start"] >= spans["root"]["end"] for b in branch_names)
    assert all(spans["join"]["start"] >= spans[b]["end"] for b in branch_names)
    events = sorted([(spans[b]["start"], 1) for b in branch_names] + [(spans[b]["end"], -1) for b in branch_names])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 3  # parallel, but never more than --max-parallel


async def test_failure_cancels_downstream_and_lets_independent_branches_finish(engine):
    result = await engine.run(
        """
id: fail
tasks:
  - id: boom
    type: core/shell.run
    inputs: {command: "echo about to fail >&2; exit 3"}
  - id: child
    type: core/shell.run
    needs: [boom]
    inputs: {command: "echo never"}
  - id: grandchild
    type: core/shell.run
    needs: [child]
    inputs: {command: "echo never"}
  - id: independent
    type: core/shell.run
    inputs: {command: "sleep 0.3; echo done"}
"""
    )
    assert result.state == State.FAILED and result.reason_code == "TASK_FAILED"
    assert result.failed_task_id == "boom"
    rows = dict(engine.rows("SELECT task_id, state || ':' || reason_code FROM task_runs"))
    assert rows == {
        "boom": "FAILED:PLUGIN_FAILED",
        "child": "CANCELLED:UPSTREAM_FAILED",
        "grandchild": "CANCELLED:UPSTREAM_FAILED",
        "independent": "SUCCESS:COMPLETED",
    }
    error = json.loads(engine.rows("SELECT error FROM task_runs WHERE task_id='boom'")[0][0])
    assert error["exit_code"] == 3 and "about to fail" in error["stderr_tail"]
    assert engine.rows("SELECT failed_task_id, state FROM executions") == [("boom", "FAILED")]


async def test_retries_are_recorded_with_backoff_between_attempts(engine, tmp_path):
    counter = tmp_path / "count"
    result = await engine.run(
        f"""
id: retry
tasks:
  - id: flaky
    type: core/shell.run
    retry: {{max: 3, backoff: {{type: exponential, delay: 100ms}}}}
    inputs: {{command: 'n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; [ $n -ge 3 ]'}}
"""
    )
    assert result.state == State.SUCCESS
    attempts = engine.rows(
        "SELECT number, state, reason_code, started_at, ended_at FROM task_attempts ORDER BY number"
    )
    assert [(a[0], a[1], a[2]) for a in attempts] == [
        (1, "FAILED", "PLUGIN_FAILED"),
        (2, "FAILED", "PLUGIN_FAILED"),
        (3, "SUCCESS", "COMPLETED"),
    ]
    assert attempts[1][3] - attempts[0][4] >= 100  # 100ms, then
    assert attempts[2][3] - attempts[1][4] >= 200  # 200ms (exponential)
    transitions = [
        json.loads(m)["to_state"] + ":" + json.loads(m)["reason"]
        for (m,) in engine.rows(
            "SELECT metadata FROM execution_audit_events WHERE event_type='STATE_CHANGE' "
            "AND json_extract(metadata,'$.task_id')='flaky' ORDER BY id"
        )
    ]
    assert transitions == [
        "RUNNING:STARTED", "WAITING:BACKOFF", "RUNNING:STARTED", "WAITING:BACKOFF", "RUNNING:STARTED",
        "SUCCESS:COMPLETED",
    ]
    assert engine.rows("SELECT attempt_count FROM task_runs") == [(3,)]
    # the failed attempts' errors stay with the attempts; the succeeded task has none
    assert engine.rows("SELECT error FROM task_runs") == [(None,)]
    assert [m is not None for (m,) in engine.rows("SELECT message FROM task_attempts ORDER BY number")] == [True, True, False]


def group_alive(pgid: int) -> bool:
    """A live (non-zombie) process is still in group `pgid`. Zombies are dead: in a container
    PID 1 may be slow to reap re-parented grandchildren, and killpg(pgid, 0) still finds them."""
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


async def test_task_timeout_kills_the_whole_process_group(engine):
    result = await engine.run(
        """
id: slow
tasks:
  - id: slow
    type: core/shell.run
    timeout: 500ms
    inputs: {command: "sleep 3517 & sleep 3517; echo never"}
""",
        kill_grace=1.0,
    )
    assert result.state == State.FAILED
    (pid, state, reason, signal) = engine.rows("SELECT pid, state, reason_code, signal FROM task_attempts")[0]
    assert (state, reason, signal) == ("TIMED_OUT", "TIMEOUT", "SIGTERM")
    assert not group_alive(pid)  # leader pid == pgid: nothing of that group remains
    assert not [
        p for p in psutil.process_iter(["cmdline", "status"])
        if p.info["cmdline"] == ["sleep", "3517"] and p.info["status"] != psutil.STATUS_ZOMBIE
    ]
    last = engine.rows("SELECT level, message FROM execution_logs WHERE task_id='slow' AND source='worker' ORDER BY id")
    assert any(level == "ERROR" and "timed out after 500ms" in msg and "SIGTERM" in msg for level, msg in last)
    [(event,)] = engine.rows("SELECT metadata FROM execution_audit_events WHERE event_type='TIMEOUT'")
    event = json.loads(event)
    assert {k: event[k] for k in ("scope", "task_id", "attempt", "timeout_duration", "reason_code")} == {
        "scope": "task", "task_id": "slow", "attempt": 1, "timeout_duration": "500ms", "reason_code": "TIMEOUT",
    }
    assert event["elapsed_time"].endswith(("ms", "s"))  # the limit and the time the group took to die


async def test_execution_timeout_cancels_running_and_pending_tasks(engine):
    result = await engine.run(
        """
id: exec-timeout
timeout: 1s
tasks:
  - id: long
    type: core/shell.run
    inputs: {command: "sleep 30"}
  - id: after
    type: core/shell.run
    needs: [long]
    inputs: {command: "echo never"}
""",
        kill_grace=1.0,
    )
    assert (result.state, result.reason_code) == (State.FAILED, "TIMEOUT")
    assert dict(engine.rows("SELECT task_id, state || ':' || reason_code FROM task_runs")) == {
        "long": "CANCELLED:TIMEOUT",
        "after": "CANCELLED:TIMEOUT",
    }
    assert engine.rows("SELECT COUNT(*) FROM execution_audit_events WHERE event_type='TIMEOUT'") == [(1,)]
    # docs/engine.md: an ERROR line with the limit and the elapsed time
    [(level, message, metadata)] = engine.rows(
        "SELECT level, message, metadata FROM execution_logs WHERE source = 'scheduler' AND message LIKE 'execution timeout%'"
    )
    assert (level, message) == ("ERROR", "execution timeout of 1s reached")
    metadata = json.loads(metadata)
    assert (metadata["reason_code"], metadata["timeout_ms"]) == ("TIMEOUT", 1000) and metadata["elapsed_ms"] >= 1000
    [(event,)] = engine.rows("SELECT metadata FROM execution_audit_events WHERE event_type='TIMEOUT'")
    assert {k: v for k, v in json.loads(event).items() if k != "elapsed_time"} == {
        "scope": "execution", "timeout_duration": "1s", "reason_code": "TIMEOUT",
    }


async def test_cancel_request_from_another_process(engine, tmp_path):
    script = f"""
import sqlite3, time
db = sqlite3.connect({str(engine.db_path)!r}, timeout=10)
while True:
    try:
        row = db.execute("SELECT id FROM executions WHERE state = 'RUNNING'").fetchone()
        if row and db.execute("SELECT 1 FROM execution_logs WHERE message = 'started'").fetchone():
            break
    except sqlite3.OperationalError:  # the engine has not created the schema yet
        pass
    time.sleep(0.05)
import trio
from kestra_trio.storage.db import open_database
from kestra_trio.storage.executions import ExecutionStore
async def main():
    async with open_database({str(engine.db_path)!r}) as d:
        print(await ExecutionStore(d).request_cancel(row[0], "user", "stop it"))
trio.run(main)
"""
    canceller = subprocess.Popen([sys.executable, "-c", script])
    try:
        result = await engine.run(
            """
id: cancel-me
tasks:
  - id: long
    type: core/shell.run
    inputs: {command: "echo started; sleep 30"}
  - id: pending
    type: core/shell.run
    needs: [long]
    inputs: {command: "echo never"}
""",
            kill_grace=1.0,
        )
    finally:
        canceller.wait(timeout=60)
    assert result.state == State.CANCELLED
    assert dict(engine.rows("SELECT task_id, state || ':' || reason_code FROM task_runs")) == {
        "long": "CANCELLED:EXECUTION_CANCELLED",
        "pending": "CANCELLED:EXECUTION_CANCELLED",
    }
    error = json.loads(engine.rows("SELECT error FROM task_runs WHERE task_id='long'")[0][0])
    assert error["cancelled_by"] == "user" and error["signal"] == "SIGTERM" and error["exit_code"] is not None
    messages = [m for (m,) in engine.rows("SELECT message FROM execution_logs WHERE task_id='long' ORDER BY id")]
    assert "started" in messages
    assert messages[-1].startswith("Task cancelled due to execution cancellation (cancelled by user: stop it)")
    events = [e for (e,) in engine.rows("SELECT event_type FROM execution_audit_events ORDER BY id")]
    assert "CANCEL_REQUESTED" in events and events[-1] == "CANCELLED"
    assert engine.rows("SELECT cancelled_by FROM executions") == [("user",)]


async def test_templates_pass_outputs_and_unknown_references_fail_clearly(engine):
    result = await engine.run(
        """
id: templates
inputs:
  - {name: who, type: string, default: world}
tasks:
  - id: first
    type: core/python.script
    inputs: {script: "outputs['greeting'] = 'hi ' + inputs['who']", inputs: {who: "{{ inputs.who }}"}}
  - id: second
    type: core/shell.run
    needs: [first]
    inputs: {command: "echo '{{ tasks.first.outputs.greeting }}'"}
  - id: third
    type: core/shell.run
    needs: [first]
    inputs: {command: "echo {{ tasks.first.outputs.missing }}"}
""",
        inputs={"who": "trio"},
    )
    assert result.state == State.FAILED and result.failed_task_id == "third"
    assert "has no output 'missing'" in result.error["message"]
    assert result.tasks["third"].reason_code == "TEMPLATE_ERROR"
    lines = [m for (m,) in engine.rows("SELECT message FROM execution_logs WHERE task_id='second' AND source LIKE 'plugin:%'")]
    assert lines == ["hi trio"]


async def test_every_plugin_line_is_committed_before_the_terminal_state(engine):
    # A trigger on the real database records, at the moment a task's terminal state is
    # written, how many plugin lines of that task are already committed.
    import sqlite3

    from kestra_trio.storage.db import open_database

    async with open_database(engine.db_path):
        pass
    with sqlite3.connect(engine.db_path) as conn:
        conn.executescript(
            """
            CREATE TABLE witness (task_id TEXT, state TEXT, plugin_lines INTEGER);
            CREATE TRIGGER witness_terminal AFTER UPDATE OF state ON task_runs
            WHEN NEW.state IN ('SUCCESS', 'FAILED', 'CANCELLED')
            BEGIN
                INSERT INTO witness SELECT NEW.task_id, NEW.state, COUNT(*) FROM execution_logs
                WHERE execution_id = NEW.execution_id AND task_id = NEW.task_id AND source LIKE 'plugin:%';
            END;
            """
        )
    result = await engine.run(
        """
id: many-lines
tasks:
  - id: ok
    type: core/shell.run
    inputs: {command: "seq 1 2500"}
  - id: bad
    type: core/shell.run
    inputs: {command: "seq 1 777; exit 1"}
  - id: slow
    type: core/shell.run
    timeout: 700ms
    inputs: {command: "seq 1 300; sleep 30"}
""",
        kill_grace=0.5,
    )
    assert result.state == State.FAILED
    witness = {task: (state, n) for task, state, n in engine.rows("SELECT * FROM witness")}
    assert witness == {"ok": ("SUCCESS", 2500), "bad": ("FAILED", 777), "slow": ("FAILED", 300)}
    total = engine.rows("SELECT COUNT(*) FROM execution_logs")[0][0]
    assert engine.rows("SELECT log_entry_count FROM executions") == [(total,)]


async def test_secret_printed_by_a_plugin_never_reaches_the_database_file(engine, monkeypatch):
    secret = "tr1o-super-secret-value"
    monkeypatch.setenv("KESTRA_TRIO_SECRET_API_TOKEN", secret)
    result = await engine.run(
        """
id: secrets
tasks:
  - id: leak
    type: core/shell.run
    inputs:
      command: 'echo "token={{ secrets.API_TOKEN }}"; echo "$TOKEN" | base64; printf %s "$TOKEN" >&2; exit 1'
      env: {TOKEN: "{{ secrets.API_TOKEN }}"}
""",
        environ={"KESTRA_TRIO_SECRET_API_TOKEN": secret},
    )
    assert result.state == State.FAILED
    import base64

    for suffix in ("", "-wal", "-shm"):
        path = engine.db_path.with_name(engine.db_path.name + suffix)
        if path.exists():
            data = path.read_bytes()
            assert secret.encode() not in data
            assert base64.b64encode(secret.encode()).rstrip(b"=") not in data
    messages = [m for (m,) in engine.rows("SELECT message FROM execution_logs WHERE task_id='leak'")]
    assert "token=***SECRET***" in messages
    inputs = engine.rows("SELECT inputs FROM task_runs")[0][0]
    assert "***SECRET***" in inputs and secret not in inputs


async def test_a_task_sees_only_the_secrets_its_inputs_name_and_none_in_its_environment(engine, monkeypatch):
    # the engine's own environment holds the secrets; a child that inherited it could print
    # them transformed (reversed, encoded) where no mask can find them
    monkeypatch.setenv("KESTRA_TRIO_SECRET_API_TOKEN", "tok-abcdef123")
    monkeypatch.setenv("KESTRA_TRIO_SECRET_OTHER", "oth-zzzyyyxxx")
    result = await engine.run(
        """
id: grants
tasks:
  - id: shell
    type: core/shell.run
    inputs:
      command: 'env | grep -c "^KESTRA_TRIO_SECRET_" || true; printf "%s" "$KESTRA_TRIO_SECRET_API_TOKEN" | rev'
  - id: none
    type: core/python.script
    inputs:
      script: 'outputs["names"] = [n for n in ("API_TOKEN", "OTHER") if n in ctx.secrets]'
  - id: one
    type: core/python.script
    inputs:
      inputs: {header: "Bearer {{ secrets.API_TOKEN }}"}
      script: 'outputs["names"] = [n for n in ("API_TOKEN", "OTHER") if n in ctx.secrets]'
"""
    )
    assert result.state == State.SUCCESS, engine.errors
    shell = [m for (m,) in engine.rows("SELECT message FROM execution_logs WHERE task_id='shell' AND source LIKE 'plugin:%'")]
    assert shell == ["0"]  # no secret variable, and nothing reversed to print
    outputs = dict(engine.rows("SELECT task_id, outputs FROM task_runs WHERE task_id IN ('none', 'one')"))
    assert json.loads(outputs["none"]) == {"names": []}
    assert json.loads(outputs["one"]) == {"names": ["API_TOKEN"]}


async def test_a_multi_line_secret_is_masked_line_by_line_and_in_escaped_forms(engine, tmp_path):
    # a PEM key from a _FILE secret: programs print it a line at a time, errors repr() it
    key = "-----BEGIN TEST KEY-----\nMIIabc123secretline0\nQ29tcGxldGVseVNlY3JldA\n-----END TEST KEY-----\n"
    (tmp_path / "key.pem").write_text(key)
    result = await engine.run(
        """
id: pem
tasks:
  - id: leak
    type: core/python.script
    inputs:
      inputs: {key: "{{ secrets.PEM }}"}
      script: |
        import json, sys
        key = inputs["key"]
        print(key)
        print(json.dumps({"key": key}), file=sys.stderr)
        raise ValueError(repr(key))
""",
        environ={"KESTRA_TRIO_SECRET_PEM_FILE": str(tmp_path / "key.pem")},
    )
    assert result.state == State.FAILED
    for suffix in ("", "-wal", "-shm"):
        path = engine.db_path.with_name(engine.db_path.name + suffix)
        if path.exists():
            data = path.read_bytes()
            assert b"MIIabc123secretline0" not in data and b"Q29tcGxldGVseVNlY3JldA" not in data
    stdout = [m for (m, meta) in engine.rows("SELECT message, metadata FROM execution_logs WHERE task_id='leak'") if '"stdout"' in (meta or '')]
    assert stdout[:4] == ["***SECRET***"] * 4  # BEGIN/END lines too: over-masking is the safe side


async def test_plugin_that_cannot_start_and_unknown_action_fail_the_task_not_the_engine(engine, tmp_path):
    plugin = tmp_path / "plugins" / "broken"
    plugin.mkdir(parents=True)
    (plugin / "plugin.yaml").write_text(
        "name: broken\nversion: 1.0.0\nnamespace: acme\ndescription: d\nauthor: a\nlicense: MIT\n"
        "command: [/nonexistent/interpreter]\nactions:\n  - name: go\n    description: d\n"
    )
    engine.registry.add_dir(tmp_path / "plugins")
    result = await engine.run(
        """
id: broken
tasks:
  - id: nope
    type: acme/broken.go
"""
    )
    assert result.state == State.FAILED
    assert result.tasks["nope"].reason_code == "PLUGIN_NOT_STARTED"
    assert "nonexistent" in result.error["message"]


async def test_cancel_during_backoff_keeps_the_finished_attempt_as_it_ended(engine):
    result = await engine.run(
        """
id: backoff-cancel
timeout: 1s
tasks:
  - id: flaky
    type: core/shell.run
    retry: {max: 3, delay: 30s}
    inputs: {command: "exit 7"}
"""
    )
    assert (result.state, result.reason_code) == (State.FAILED, "TIMEOUT")
    assert engine.rows("SELECT number, state, reason_code, exit_code FROM task_attempts") == [
        (1, "FAILED", "PLUGIN_FAILED", 7)
    ]
    assert engine.rows("SELECT state, reason_code FROM task_runs") == [("CANCELLED", "TIMEOUT")]
    error = json.loads(engine.rows("SELECT error FROM task_runs")[0][0])
    assert "waiting before attempt 2" in error["message"] and error["signal"] is None


async def test_execution_times_follow_its_transitions(engine):
    result = await engine.run(
        """
id: times
tasks:
  - id: a
    type: core/shell.run
    inputs: {command: "true"}
"""
    )
    assert result.state == State.SUCCESS
    [(created, started, ended)] = engine.rows("SELECT created_at, started_at, ended_at FROM executions")
    events = dict(engine.rows("SELECT event_type, timestamp FROM execution_audit_events WHERE event_type IN ('CREATED', 'STARTED')"))
    assert created == events["CREATED"] and started == events["STARTED"]  # inspect's overview = its audit trail
    assert created <= started <= ended
    [(task_started,)] = engine.rows("SELECT started_at FROM task_runs")
    assert started <= task_started


@pytest.mark.parametrize("run_number", range(3))  # trio shuffles new tasks: one lucky run proves little
async def test_ready_tasks_start_in_workflow_order(engine, run_number):
    tasks = "\n".join(
        f"""
  - id: {name}
    type: core/shell.run
    needs: [root]
    inputs: {{command: "true"}}"""
        for name in ("b1", "b2", "b3", "b4", "b5", "b6")
    )
    result = await engine.run(
        f"""
id: order
tasks:
  - id: root
    type: core/shell.run
    inputs: {{command: "true"}}{tasks}
""",
        max_parallel=1,
    )
    assert result.state == State.SUCCESS
    started = [t for (t,) in engine.rows(
        "SELECT json_extract(metadata, '$.task_id') FROM execution_audit_events "
        "WHERE event_type = 'STATE_CHANGE' AND json_extract(metadata, '$.to_state') = 'RUNNING' "
        "AND json_extract(metadata, '$.task_id') IS NOT NULL ORDER BY id"
    )]
    assert started == ["root", "b1", "b2", "b3", "b4", "b5", "b6"]


async def test_a_task_waiting_to_retry_gives_its_slot_to_another_task(engine):
    result = await engine.run(
        """
id: backoff-slot
tasks:
  - id: flaky
    type: core/shell.run
    retry: {max: 2, delay: 1s}
    inputs: {command: "exit 1"}
  - id: other
    type: core/shell.run
    inputs: {command: "true"}
""",
        max_parallel=1,
    )
    assert result.state == State.FAILED
    started = [
        f"{task}#{attempt}" for task, attempt in engine.rows(
            "SELECT task_id, number FROM task_attempts ORDER BY started_at"
        )
    ]
    assert started == ["flaky#1", "other#1", "flaky#2"]  # `other` ran during flaky's backoff
    # docs/observability.md: the RETRY audit event
    [(retry,)] = engine.rows("SELECT metadata FROM execution_audit_events WHERE event_type = 'RETRY'")
    assert json.loads(retry) == {
        "task_id": "flaky", "attempt": 1, "next_attempt": 2, "delay_ms": 1000, "reason_code": "PLUGIN_FAILED",
    }


async def test_a_task_back_from_backoff_goes_ahead_of_tasks_that_have_not_started(engine, tmp_path):
    """docs/engine.md: when its delay is over it takes the next free slot, ahead of tasks not started yet."""
    gate = tmp_path / "failed-once"  # flaky fails its first attempt only
    # flaky#1 fails and waits 500 ms; `blocker` takes the only slot for 1.5 s, so when it ends
    # flaky#2 (due for 1 s by then) and both `late` tasks (never started) wait for the slot
    result = await engine.run(
        f"""
id: backoff-ahead
tasks:
  - id: flaky
    type: core/shell.run
    retry: {{max: 2, delay: 500ms}}
    inputs: {{command: "if [ -e {gate}.first ]; then exit 0; else touch {gate}.first; exit 1; fi"}}
  - id: blocker
    type: core/shell.run
    inputs: {{command: "sleep 1.5"}}
  - id: late-1
    type: core/shell.run
    inputs: {{command: "true"}}
  - id: late-2
    type: core/shell.run
    inputs: {{command: "true"}}
""",
        max_parallel=1,
    )
    assert result.state == State.SUCCESS
    started = [
        f"{task}#{attempt}" for task, attempt in engine.rows("SELECT task_id, number FROM task_attempts ORDER BY started_at")
    ]
    assert started == ["flaky#1", "blocker#1", "flaky#2", "late-1#1", "late-2#1"]


def test_ctrl_c_while_the_execution_is_being_created_still_records_it_cancelled(tmp_path):
    # The signal lands right after the execution row is committed, before the engine's tasks
    # run: it must wait for the signal watcher, not kill the engine with the execution PENDING.
    workflow = tmp_path / "wf.yaml"
    workflow.write_text("id: early\ntasks:\n  - id: a\n    type: core/shell.run\n    inputs: {command: 'sleep 60'}\n")
    script = f"""
import os, signal, sqlite3, trio
from kestra_trio.engine.context import EngineOptions
from kestra_trio.service.app import run_execution
from kestra_trio.model.loading import load_workflow
from kestra_trio.plugin_runtime.registry import PluginRegistry
from kestra_trio.storage.db import open_database

def on_progress(event):
    if event.reason == "CREATED":
        os.kill(os.getpid(), signal.SIGINT)

async def main():
    registry = PluginRegistry.discover()
    workflow = load_workflow({str(workflow)!r}, catalog=registry)
    async with open_database({str(tmp_path / 'k.db')!r}) as db:
        result = await run_execution(workflow, {{}}, db=db, registry=registry,
                                     options=EngineOptions(on_progress=on_progress, kill_grace=1))
    print(result.state.value, result.reason_code)

trio.run(main)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["CANCELLED", "EXECUTION_CANCELLED"]
    with sqlite3.connect(tmp_path / "k.db") as conn:
        assert conn.execute("SELECT state, cancelled_by FROM executions").fetchall() == [("CANCELLED", "user")]


async def test_big_inputs_and_outputs_are_kept_whole_on_the_task_but_not_copied_into_log_lines(engine):
    result = await engine.run(
        """
id: big
tasks:
  - id: produce
    type: core/python.script
    inputs: {script: 'outputs["blob"] = "x" * 300_000'}
  - id: consume
    type: core/python.script
    needs: [produce]
    inputs:
      inputs: {blob: "{{ tasks.produce.outputs.blob }}"}
      script: 'outputs["n"] = len(inputs["blob"])'
"""
    )
    assert result.state == State.SUCCESS, engine.errors
    outputs = dict(engine.rows("SELECT task_id, outputs FROM task_runs"))
    assert len(json.loads(outputs["produce"])["blob"]) == 300_000 and json.loads(outputs["consume"]) == {"n": 300_000}
    worker = engine.rows("SELECT message, metadata FROM execution_logs WHERE source = 'worker'")
    assert max(len(meta) for _, meta in worker) < 70_000  # each line's copy is bounded
    started = next(json.loads(meta) for message, meta in worker if message.startswith("Task consume started"))
    assert started["inputs"]["_truncated"] is True and started["inputs"]["bytes"] > 300_000
    assert "--task consume --show-inputs" in started["inputs"]["see"]
