"""Issue 11 through the real `kestra-trio` entry point: outputs/metrics lines shown by
inspect, labels, for_each at 1,000 items, subflows (linked both ways, cancel follows) and
`execution restart` (after a failure and after kill -9 of the engine)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_run_cli import CLI, db_rows, kt, rows_once_created, wait_for, write

pytestmark = pytest.mark.slow  # starts the real CLI and its processes (--quick skips it)

ROOT = Path(__file__).resolve().parents[2]


def inspect_json(db, execution_id):
    result = kt("execution", "inspect", execution_id, "--json", db=db)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def run_json(db, *args, env=None):
    result = kt("run", *args, "--json", db=db, env=env)
    assert "Traceback" not in result.stderr
    return result, json.loads(result.stdout)


def test_outputs_and_metrics_lines_are_shown_by_inspect(tmp_path):
    db = tmp_path / "k.db"
    result, payload = run_json(db, str(ROOT / "examples" / "outputs.yaml"))
    assert result.returncode == 0, result.stderr
    eid = payload["execution_id"]
    doc = inspect_json(db, eid)
    count = next(t for t in doc["tasks"] if t["task_id"] == "count")
    assert count["outputs"]["root"] == "/" and isinstance(count["outputs"]["entries"], int)
    assert [(m["task_id"], m["name"], m["tags"]) for m in doc["metrics"]] == [("count", "entries", {"dir": "/"})]
    text = kt("execution", "inspect", eid, db=db).stdout
    assert "Metrics (1)" in text and "entries = " in text
    logs = kt("execution", "logs", eid, db=db).stdout
    assert "::{" not in logs and "counted" in logs


def test_labels_from_the_workflow_and_the_command_line_filter_the_list(tmp_path):
    db = tmp_path / "k.db"
    path = write(tmp_path, """
        id: labelled
        labels: {team: data}
        tasks:
          - {id: t, type: core/log.message, inputs: {message: hi}}
    """)
    first = kt("run", str(path), "--label", "env=prod", db=db)
    second = kt("run", str(path), db=db)
    assert first.returncode == second.returncode == 0
    listed = lambda *labels: json.loads(kt("execution", "list", "--json", *labels, db=db).stdout)  # noqa: E731
    assert len(listed("--label", "team=data")) == 2
    [prod] = listed("--label", "team=data", "--label", "env=prod")
    assert prod["labels"] == {"team": "data", "env": "prod"}
    assert listed("--label", "env=dev") == []
    bad = kt("run", str(path), "--label", "no-equals", db=db)
    assert bad.returncode == 2 and "--label must be KEY=VALUE" in bad.stderr and "Traceback" not in bad.stderr
    assert "Labels       env=prod, team=data" in kt("execution", "inspect", prod["id"], db=db).stdout.replace(
        "team=data, env=prod", "env=prod, team=data")


def test_for_each_with_a_thousand_items(tmp_path):
    db = tmp_path / "k.db"
    path = write(tmp_path, """
        id: thousand
        tasks:
          - id: list
            type: core/shell.run
            inputs:
              command: |
                PYTHON -c "import json; print('::' + json.dumps({'outputs': {'items': list(range(1000))}}) + '::')"
          - id: each
            type: core/shell.run
            needs: [list]
            for_each: "{{ tasks.list.outputs['items'] }}"
            concurrency: 8
            inputs:
              command: "true"
          - id: count
            type: core/log.message
            needs: [each]
            inputs: {message: "{{ tasks.each.outputs | length }} iterations"}
    """.replace("PYTHON", sys.executable))
    result = kt("run", str(path), db=db, timeout=600)
    assert result.returncode == 0, result.stderr + result.stdout[-2000:]
    assert db_rows(db, "SELECT COUNT(*), MIN(state), MAX(state) FROM task_runs WHERE parent_task_id = 'each'") == [
        (1000, "SUCCESS", "SUCCESS")
    ]
    assert db_rows(db, "SELECT 1 FROM execution_logs WHERE task_id = 'count' AND message = '1000 iterations'")
    summary = kt("execution", "inspect", db_rows(db, "SELECT id FROM executions")[0][0], db=db).stdout
    assert "1003 tasks: showing a summary" in summary


def test_a_subflow_child_is_linked_both_ways_and_cancelled_with_its_parent(tmp_path):
    db = tmp_path / "k.db"
    write(tmp_path, """
        id: slow-child
        tasks:
          - id: wait
            type: core/shell.run
            inputs: {command: "echo child-started; sleep 100"}
    """, name="child.yaml")
    parent = write(tmp_path, """
        id: parent
        tasks:
          - id: call
            type: core/flow.subflow
            inputs: {workflow: child.yaml}
    """)
    proc = subprocess.Popen([CLI, "run", str(parent), "--db", str(db), "--kill-grace", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
    try:
        wait_for(lambda: rows_once_created(db, "SELECT 1 FROM execution_logs WHERE message = 'child-started'"))
        [(child, parent_id)] = db_rows(db, "SELECT id, parent_execution_id FROM executions WHERE workflow_id = 'slow-child'")
        assert "Children     " + child in kt("execution", "inspect", parent_id, db=db).stdout
        assert f"Parent       {parent_id} (task call)" in kt("execution", "inspect", child, db=db).stdout
        cancel = kt("execution", "cancel", parent_id, "--wait", "60", db=db)
        assert cancel.returncode == 0, cancel.stderr
        assert proc.wait(timeout=60) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert db_rows(db, "SELECT workflow_id, state FROM executions ORDER BY workflow_id") == [
        ("parent", "CANCELLED"), ("slow-child", "CANCELLED")
    ]


FLAKY = """
    id: flaky
    tasks:
      - id: produce
        type: core/shell.run
        inputs: {{command: "echo run >> {tmp}/produced; echo '::{{\\"outputs\\": {{\\"n\\": 21}}}}::'"}}
      - id: fragile
        type: core/shell.run
        needs: [produce]
        inputs: {{command: "{body}"}}
      - id: after
        type: core/log.message
        needs: [fragile]
        inputs: {{message: "n is {{{{ tasks.produce.outputs.n }}}}"}}
"""


def test_restart_after_a_failure_reruns_only_what_failed(tmp_path):
    db = tmp_path / "k.db"
    flag = tmp_path / "flag"
    path = write(tmp_path, FLAKY.format(tmp=tmp_path, body=f"test -f {flag}"))
    failed, payload = run_json(db, str(path))
    assert failed.returncode == 1
    eid = payload["execution_id"]
    flag.write_text("")
    restarted = kt("execution", "restart", eid[:8], "--reason", "flag set", db=db)
    assert restarted.returncode == 0, restarted.stderr
    assert f"Execution {eid} SUCCESS" in restarted.stdout
    assert (tmp_path / "produced").read_text() == "run\n"
    doc = inspect_json(db, eid)
    assert doc["execution"]["restart_count"] == 1
    attempts = {t["task_id"]: [a["state"] for a in t["attempts"]] for t in doc["tasks"]}
    assert attempts == {"produce": ["SUCCESS"], "fragile": ["FAILED", "SUCCESS"], "after": ["SUCCESS"]}
    [restart] = [e for e in doc["audit_events"] if e["event_type"] == "RESTARTED"]
    assert restart["metadata"]["reason"] == "flag set" and restart["metadata"]["tasks"] == ["after", "fragile"]
    again = kt("execution", "restart", eid, db=db)
    assert again.returncode == 2 and "nothing to restart" in again.stderr
    typo = kt("execution", "restart", eid, "--from", "fragil", db=db)
    assert typo.returncode == 2 and "did you mean 'fragile'" in typo.stderr
    assert typo.stderr.strip().endswith("--from 'fragil': no task 'fragil' in the workflow's tasks (did you mean 'fragile'?); its tasks: produce, fragile, after")
    from_produce = kt("execution", "restart", eid, "--from", "produce", "--json", db=db)
    assert from_produce.returncode == 0, from_produce.stderr
    assert (tmp_path / "produced").read_text() == "run\nrun\n"
    assert kt("execution", "restart", "ffffffffffff", db=db).returncode == 1


def test_restart_after_kill_9_of_the_engine(tmp_path):
    db = tmp_path / "k.db"
    flag = tmp_path / "flag"
    path = write(tmp_path, FLAKY.format(tmp=tmp_path, body=f"echo waiting; test -f {flag} || sleep 100"))
    engine = subprocess.Popen([CLI, "run", str(path), "--db", str(db)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
    try:
        wait_for(lambda: rows_once_created(db, "SELECT 1 FROM execution_logs WHERE message = 'waiting'"))
        engine.send_signal(signal.SIGKILL)
        assert engine.wait(timeout=60) == -signal.SIGKILL
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
    [(eid,)] = db_rows(db, "SELECT id FROM executions")
    flag.write_text("")
    restarted = kt("execution", "restart", eid, db=db)  # its service finds the lost engine first
    assert restarted.returncode == 0, restarted.stderr
    states = db_rows(db, "SELECT state, reason_code FROM executions")
    assert states == [("SUCCESS", "COMPLETED")]
    audit = [json.loads(m) for (m,) in db_rows(db, "SELECT metadata FROM execution_audit_events WHERE event_type = 'FAILED'")]
    assert audit and audit[0]["reason_code"] == "ENGINE_LOST"
    assert db_rows(db, "SELECT number, state, reason_code FROM task_attempts WHERE task_id = 'fragile' ORDER BY number") == [
        (1, "FAILED", "ENGINE_LOST"), (2, "SUCCESS", "COMPLETED")
    ]
    assert (tmp_path / "produced").read_text() == "run\n"


@pytest.mark.parametrize(
    ("example", "args", "code"),
    [
        ("outputs.yaml", (), 0),
        ("conditions.yaml", (), 0),
        ("conditions.yaml", ("--input", "env=prod"), 0),
        ("for_each.yaml", (), 0),
        ("error_handling.yaml", (), 1),
        ("subflow.yaml", (), 0),
        ("context_and_filters.yaml", ("--input", "who=ada"), 0),
    ],
)
def test_the_issue_11_examples_run(tmp_path, example, args, code):
    result, payload = run_json(tmp_path / "k.db", str(ROOT / "examples" / example), *args)
    assert result.returncode == code, result.stderr
    tasks = payload["tasks"]
    if example == "conditions.yaml":
        assert tasks["deploy"]["state"] == ("SUCCESS" if args else "SKIPPED")
    if example == "error_handling.yaml":
        assert payload["allowed_failures"] == ["optional-cache-warmup"]
        assert tasks["alert"]["state"] == tasks["cleanup"]["state"] == "SUCCESS"
    if example == "subflow.yaml":
        assert tasks["add"]["outputs"]["outputs"] == {"total": 6}


def test_the_restartable_example(tmp_path):
    db = tmp_path / "k.db"
    ready = tmp_path / "ready"
    example = str(ROOT / "examples" / "restartable.yaml")
    failed, payload = run_json(db, example, "--input", f"ready_file={ready}")
    assert failed.returncode == 1 and payload["failed_task_id"] == "load"
    ready.write_text("")
    restarted = kt("execution", "restart", payload["execution_id"], "--json", db=db)
    assert restarted.returncode == 0, restarted.stderr
    tasks = json.loads(restarted.stdout)["tasks"]
    assert tasks["load"]["attempts"] == 3 and tasks["load"]["outputs"]["loaded"] == 1200
    listed = json.loads(kt("execution", "list", "--label", "team=data", "--json", db=db).stdout)
    assert [row["id"] for row in listed] == [payload["execution_id"]]
