"""Issue 11's engine half in process: outputs/metrics lines, run_if, for_each, allow_failure,
errors:/finally:, workflow outputs, labels, subflows and restart — real SQLite file, real
plugin processes, the service's enqueue/claim."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from kestra_trio.engine.context import EngineOptions
from kestra_trio.model.loading import load_workflow
from kestra_trio.service.app import ServiceConfig, open_service
from kestra_trio.state.states import State
from kestra_trio.storage.db import open_database

pytestmark = pytest.mark.slow  # starts real plugin processes

PY = sys.executable


def states(engine, execution_id):
    return dict(engine.rows("SELECT task_id, state FROM task_runs WHERE execution_id = ?", execution_id))


def reasons(engine, execution_id):
    return dict(engine.rows("SELECT task_id, reason_code FROM task_runs WHERE execution_id = ?", execution_id))


# ----------------------------------------------------------------- outputs and metrics lines


async def test_outputs_and_metrics_lines_from_a_shell_task(engine):
    result = await engine.run("""
        id: lines
        tasks:
          - id: count
            type: core/shell.run
            inputs:
              command: |
                echo "counting"
                echo '::{"outputs": {"n": 2, "names": ["a", "b"]}}::'
                echo '  ::{"metrics": [{"name": "rows", "value": 7, "type": "counter", "tags": {"table": "t"}}]}::'
                echo '::{"outputs": {"n": 3}}::'
          - id: use
            type: core/log.message
            needs: [count]
            inputs: {message: "n={{ tasks.count.outputs.n }} first={{ tasks.count.outputs.names[0] }}"}
    """)
    assert result.state == State.SUCCESS, result.message
    eid = result.execution_id
    [(outputs,)] = engine.rows("SELECT outputs FROM task_runs WHERE execution_id = ? AND task_id = 'count'", eid)
    assert json.loads(outputs) == {"n": 3, "names": ["a", "b"], "exit_code": 0}  # later lines win key by key
    messages = [m for (m,) in engine.rows("SELECT message FROM execution_logs WHERE execution_id = ?", eid)]
    assert "counting" in messages and "n=3 first=a" in messages
    assert not any("::{" in m for m in messages), "outputs/metrics lines are not log lines"
    assert engine.rows("SELECT task_id, attempt, name, type, value, tags FROM task_metrics WHERE execution_id = ?", eid) == [
        ("count", 1, "rows", "counter", 7.0, '{"table": "t"}')
    ]


async def test_a_malformed_outputs_line_is_kept_as_a_log_line_with_a_warning(engine):
    result = await engine.run("""
        id: malformed
        tasks:
          - id: bad
            type: core/shell.run
            inputs: {command: "echo '::{\\"outputs\\": [1]}::'"}
    """)
    assert result.state == State.SUCCESS
    rows = engine.rows("SELECT level, message FROM execution_logs WHERE execution_id = ? AND task_id = 'bad'", result.execution_id)
    assert ("INFO", '::{"outputs": [1]}::') in rows
    assert any(level == "WARN" and '"outputs" must be a JSON object' in m for level, m in rows)


async def test_outputs_past_the_cap_fail_the_task_with_a_clear_error(engine, tmp_path):
    script = tmp_path / "big.py"
    script.write_text(
        "import json\nchunk = 'x' * (1024 * 1024)\n"
        "for i in range(17):\n    print('::' + json.dumps({'outputs': {f'k{i}': chunk}}) + '::', flush=True)\n"
    )
    result = await engine.run(f"""
        id: big
        tasks:
          - id: huge
            type: core/shell.run
            inputs: {{command: "{PY} {script}"}}
    """)
    assert result.state == State.FAILED
    message = result.tasks["huge"].error["message"]
    assert "larger than 16 MiB" in message and "write large data to a file" in message


# ----------------------------------------------------------------- run_if and SKIPPED


async def test_run_if_false_skips_and_dependents_run_unless_they_need_its_outputs(engine):
    result = await engine.run("""
        id: cond
        inputs:
          - {name: env, type: string, default: dev}
        tasks:
          - id: deploy
            type: core/shell.run
            run_if: "{{ inputs.env == 'prod' }}"
            inputs: {command: "echo '::{\\"outputs\\": {\\"url\\": \\"x\\"}}::'"}
          - id: announce
            type: core/log.message
            needs: [deploy]
            inputs: {message: "done"}
          - id: link
            type: core/log.message
            needs: [deploy]
            inputs: {message: "{{ tasks.deploy.outputs.url }}"}
          - id: fallback
            type: core/log.message
            needs: [deploy]
            inputs: {message: "{{ tasks.deploy.outputs.url | default('none') }}"}
    """, {"env": "dev"})
    assert result.state == State.SUCCESS, result.message
    eid = result.execution_id
    assert states(engine, eid) == {"deploy": "SKIPPED", "announce": "SUCCESS", "link": "SKIPPED", "fallback": "SUCCESS"}
    assert reasons(engine, eid)["deploy"] == "RUN_IF_FALSE"
    assert reasons(engine, eid)["link"] == "OUTPUTS_UNAVAILABLE"
    audit = engine.rows(
        "SELECT metadata FROM execution_audit_events WHERE execution_id = ? AND event_type = 'STATE_CHANGE'", eid
    )
    assert any(json.loads(m).get("to_state") == "SKIPPED" and json.loads(m).get("task_id") == "deploy" for (m,) in audit)
    assert engine.rows("SELECT COUNT(*) FROM task_attempts WHERE execution_id = ? AND task_id = 'deploy'", eid) == [(0,)]


async def test_a_run_if_that_is_not_a_boolean_fails_the_task(engine):
    result = await engine.run("""
        id: cond
        inputs:
          - {name: flag, type: string, default: "no"}
        tasks:
          - id: t
            type: core/log.message
            run_if: "{{ inputs.flag }}"
            inputs: {message: hi}
    """, {"flag": "no"})
    assert result.state == State.FAILED
    assert result.tasks["t"].reason_code == "TEMPLATE_ERROR"
    assert "run_if must give true or false" in result.tasks["t"].error["message"]


# ----------------------------------------------------------------- for_each


async def test_for_each_runs_one_task_run_per_item_with_its_own_logs_and_outputs(engine, tmp_path):
    result = await engine.run(f"""
        id: fan
        tasks:
          - id: list
            type: core/shell.run
            inputs: {{command: "echo '::{{\\"outputs\\": {{\\"items\\": [\\"a\\", \\"b\\", \\"c\\", \\"d\\"]}}}}::'"}}
          - id: each
            type: core/shell.run
            needs: [list]
            for_each: "{{{{ tasks.list.outputs['items'] }}}}"
            concurrency: 2
            inputs:
              command: |
                echo "start $$ITEM $$(date +%s%N)" >> {tmp_path}/trace
                sleep 0.2
                echo "end $$ITEM $$(date +%s%N)" >> {tmp_path}/trace
                echo "::{{\\"outputs\\": {{\\"upper\\": \\"$$ITEM$$ITEM\\", \\"index\\": $$INDEX}}}}::"
              env: {{ITEM: "{{{{ item }}}}", INDEX: "{{{{ item_index }}}}"}}
          - id: after
            type: core/log.message
            needs: [each]
            inputs: {{message: "{{{{ tasks.each.outputs | map(attribute='upper') | join(',') }}}}"}}
    """.replace("$$", "$"))
    assert result.state == State.SUCCESS, result.message
    eid = result.execution_id
    rows = engine.rows(
        "SELECT task_id, state, parent_task_id, iteration, item, attempt_count FROM task_runs "
        "WHERE execution_id = ? AND parent_task_id = 'each' ORDER BY iteration", eid,
    )
    assert rows == [(f"each[{i}]", "SUCCESS", "each", i, json.dumps(x), 1) for i, x in enumerate("abcd")]
    [(outputs,)] = engine.rows("SELECT outputs FROM task_runs WHERE execution_id = ? AND task_id = 'each'", eid)
    assert [o["upper"] for o in json.loads(outputs)] == ["aa", "bb", "cc", "dd"]
    assert ("aa,bb,cc,dd",) in engine.rows("SELECT message FROM execution_logs WHERE execution_id = ? AND task_id = 'after'", eid)
    for i in range(4):  # each iteration's own log lines
        assert engine.rows(
            "SELECT COUNT(*) FROM execution_logs WHERE execution_id = ? AND task_id = ? AND message LIKE 'Task each[%] started%'",
            eid, f"each[{i}]",
        ) == [(1,)]
    # at most 2 at once: sort the start/end events and count
    events = sorted((int(ts), kind) for kind, _, ts in (line.split() for line in (tmp_path / "trace").read_text().splitlines()))
    running = peak = 0
    for _, kind in events:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 2


async def test_for_each_over_an_empty_list_succeeds_without_iterations(engine):
    result = await engine.run("""
        id: empty
        tasks:
          - id: each
            type: core/log.message
            for_each: []
            inputs: {message: "{{ item }}"}
          - id: after
            type: core/log.message
            needs: [each]
            inputs: {message: "{{ tasks.each.outputs | length }} results"}
    """)
    assert result.state == State.SUCCESS, result.message
    assert states(engine, result.execution_id) == {"each": "SUCCESS", "after": "SUCCESS"}
    assert ("0 results",) in engine.rows("SELECT message FROM execution_logs WHERE task_id = 'after'")


async def test_for_each_past_the_bound_fails_with_a_clear_error(engine):
    result = await engine.run("""
        id: bound
        tasks:
          - id: each
            type: core/log.message
            for_each: [1, 2, 3]
            inputs: {message: "{{ item }}"}
    """, environ={"KESTRA_TRIO_FOR_EACH_MAX_ITEMS": "2"})
    assert result.state == State.FAILED
    message = result.tasks["each"].error["message"]
    assert "for_each gave 3 items; at most 2 may run" in message and "KESTRA_TRIO_FOR_EACH_MAX_ITEMS" in message
    assert engine.rows("SELECT COUNT(*) FROM task_runs WHERE parent_task_id = 'each'") == [(0,)]


async def test_a_failed_iteration_fails_its_task_after_the_others_ran(engine):
    result = await engine.run("""
        id: some-fail
        tasks:
          - id: each
            type: core/shell.run
            for_each: [0, 1, 0]
            inputs: {command: "exit {{ item }}"}
    """)
    assert result.state == State.FAILED
    eid = result.execution_id
    assert states(engine, eid) == {"each": "FAILED", "each[0]": "SUCCESS", "each[1]": "FAILED", "each[2]": "SUCCESS"}
    assert "1 of 3 iterations failed; first: each[1]" in result.message


# ----------------------------------------------------------------- failure handling


async def test_allow_failure_lets_the_execution_succeed_and_says_so(engine):
    result = await engine.run("""
        id: allowed
        tasks:
          - id: optional
            type: core/shell.run
            allow_failure: true
            inputs: {command: "exit 3"}
          - id: next
            type: core/log.message
            needs: [optional]
            inputs: {message: "went on"}
    """)
    assert result.state == State.SUCCESS
    assert result.allowed_failures == ["optional"]
    eid = result.execution_id
    assert states(engine, eid) == {"optional": "FAILED", "next": "SUCCESS"}
    [(error,)] = engine.rows("SELECT error FROM task_runs WHERE execution_id = ? AND task_id = 'optional'", eid)
    assert json.loads(error)["failure_allowed"] is True
    [(meta,)] = engine.rows("SELECT metadata FROM execution_audit_events WHERE execution_id = ? AND event_type = 'COMPLETED'", eid)
    assert json.loads(meta)["allowed_failures"] == ["optional"]
    assert any("1 failure allowed" in m for (m,) in engine.rows("SELECT message FROM execution_logs WHERE execution_id = ?", eid))


async def test_errors_run_on_failure_with_the_error_and_finally_always_runs(engine):
    result = await engine.run("""
        id: handlers
        tasks:
          - id: load
            type: core/shell.run
            inputs: {command: "exit 4"}
        errors:
          - id: alert
            type: core/log.message
            inputs: {message: "failed: {{ execution.error.task_id }}: {{ execution.error.message }}"}
        finally:
          - id: cleanup
            type: core/log.message
            inputs: {message: "cleanup"}
    """)
    assert result.state == State.FAILED and result.failed_task_id == "load"
    eid = result.execution_id
    assert states(engine, eid) == {"load": "FAILED", "alert": "SUCCESS", "cleanup": "SUCCESS"}
    assert dict(engine.rows("SELECT task_id, phase FROM task_runs WHERE execution_id = ?", eid)) == {
        "load": "tasks", "alert": "errors", "cleanup": "finally"
    }
    assert ("failed: load: command exited with code 4",) in engine.rows(
        "SELECT message FROM execution_logs WHERE execution_id = ? AND task_id = 'alert'", eid
    )


async def test_errors_do_not_run_on_success_and_a_failed_finally_fails_the_execution(engine):
    result = await engine.run("""
        id: handlers
        tasks:
          - id: ok
            type: core/log.message
            inputs: {message: "fine"}
        errors:
          - id: alert
            type: core/log.message
            inputs: {message: "never"}
        finally:
          - id: cleanup
            type: core/shell.run
            inputs: {command: "exit 2"}
    """)
    assert result.state == State.FAILED and result.failed_task_id == "cleanup"
    assert states(engine, result.execution_id) == {"ok": "SUCCESS", "cleanup": "FAILED"}


async def test_finally_runs_after_the_execution_timeout(engine):
    result = await engine.run("""
        id: timed
        timeout: 1s
        tasks:
          - id: slow
            type: core/shell.run
            inputs: {command: "sleep 60"}
        errors:
          - id: alert
            type: core/log.message
            inputs: {message: "{{ execution.error.reason_code }}"}
        finally:
          - id: cleanup
            type: core/log.message
            inputs: {message: "cleanup after {{ execution.error.message }}"}
    """, kill_grace=0.5)
    assert result.state == State.FAILED and result.reason_code == "TIMEOUT"
    eid = result.execution_id
    assert states(engine, eid) == {"slow": "CANCELLED", "alert": "SUCCESS", "cleanup": "SUCCESS"}
    assert ("TIMEOUT",) in engine.rows("SELECT message FROM execution_logs WHERE task_id = 'alert'")


# ----------------------------------------------------------------- workflow outputs and labels


async def test_workflow_outputs_are_rendered_at_the_end_and_stored(engine):
    result = await engine.run("""
        id: outs
        labels: {team: data}
        tasks:
          - id: sum
            type: core/shell.run
            inputs: {command: "echo '::{\\"outputs\\": {\\"n\\": 6}}::'"}
        outputs:
          total: "{{ tasks.sum.outputs.n }}"
          text: "total {{ tasks.sum.outputs.n }}"
    """)
    assert result.state == State.SUCCESS
    assert result.outputs == {"total": 6, "text": "total 6"}
    [(outputs, labels)] = engine.rows("SELECT outputs, labels FROM executions WHERE id = ?", result.execution_id)
    assert json.loads(outputs) == {"total": 6, "text": "total 6"}
    assert json.loads(labels) == {"team": "data"}
    assert engine.rows("SELECT key, value FROM execution_labels WHERE execution_id = ?", result.execution_id) == [("team", "data")]


# ----------------------------------------------------------------- subflows and restart


async def _service_run(engine, path, inputs=None, **enqueue):
    workflow = load_workflow(path, catalog=engine.registry)
    options = EngineOptions(handle_signals=False, on_error=engine.errors.append)
    async with open_service(ServiceConfig(engine.db_path, engine.registry, options)) as service:
        return await service.run(workflow, inputs or {}, workflow_path=str(path), **enqueue)


async def test_a_subflow_runs_a_linked_child_and_returns_its_outputs(engine, tmp_path):
    (tmp_path / "child.yaml").write_text(textwrap.dedent("""
        id: child
        inputs:
          - {name: numbers, type: json}
        tasks:
          - id: sum
            type: core/shell.run
            inputs: {command: "echo '::{\\"outputs\\": {\\"n\\": {{ inputs.numbers | sum }}}}::'"}
        outputs:
          total: "{{ tasks.sum.outputs.n }}"
    """))
    result = await engine.run("""
        id: parent
        tasks:
          - id: call
            type: core/flow.subflow
            inputs: {workflow: child.yaml, inputs: {numbers: [1, 2, 3]}}
          - id: show
            type: core/log.message
            needs: [call]
            inputs: {message: "{{ tasks.call.outputs.state }} {{ tasks.call.outputs.outputs.total }}"}
    """, max_parallel=1)  # the waiting subflow task holds no slot: the child still runs
    assert result.state == State.SUCCESS, result.message
    parent = result.execution_id
    [(child, child_state, parent_task, depth)] = engine.rows(
        "SELECT id, state, parent_task_id, subflow_depth FROM executions WHERE parent_execution_id = ?", parent
    )
    assert (child_state, parent_task, depth) == ("SUCCESS", "call", 1)
    [(outputs,)] = engine.rows("SELECT outputs FROM task_runs WHERE execution_id = ? AND task_id = 'call'", parent)
    assert json.loads(outputs) == {"execution_id": child, "state": "SUCCESS", "outputs": {"total": 6}}
    assert ("SUCCESS 6",) in engine.rows("SELECT message FROM execution_logs WHERE execution_id = ? AND task_id = 'show'", parent)


async def test_a_subflow_that_calls_itself_fails_with_the_cycle(engine, tmp_path):
    result = await engine.run("""
        id: loop
        tasks:
          - id: again
            type: core/flow.subflow
            inputs: {workflow: wf.yaml}
    """)
    assert result.state == State.FAILED
    assert "would call itself (loop → loop)" in result.tasks["again"].error["message"]


async def test_restart_reruns_only_what_failed_with_new_attempts_and_reused_outputs(engine, tmp_path):
    flag = tmp_path / "ok"
    path = tmp_path / "flaky.yaml"
    path.write_text(textwrap.dedent(f"""
        id: flaky
        tasks:
          - id: produce
            type: core/shell.run
            inputs: {{command: "echo once >> {tmp_path}/produced; echo '::{{\\"outputs\\": {{\\"n\\": 21}}}}::'"}}
          - id: fragile
            type: core/shell.run
            needs: [produce]
            inputs: {{command: "test -f {flag} && echo '::{{\\"outputs\\": {{\\"n\\": {{{{ tasks.produce.outputs.n * 2 }}}}}}}}::'"}}
          - id: after
            type: core/log.message
            needs: [fragile]
            inputs: {{message: "got {{{{ tasks.fragile.outputs.n }}}}"}}
    """))
    from kestra_trio.service.registry import load_file, revision_for_run

    options = EngineOptions(handle_signals=False, on_error=engine.errors.append)
    async with open_database(engine.db_path) as db:
        async with open_service(ServiceConfig(None, engine.registry, options), db=db) as service:
            loaded = load_file(path, engine.registry)
            revision = await revision_for_run(service.workflows, loaded)
            first = await service.run(loaded.workflow, {}, workflow_path=str(path), workflow_revision=revision)
            assert first.state == State.FAILED
            flag.write_text("")
            await service.restart(first.execution_id, reason="flag is set")
            second = await service.wait(first.execution_id)
    assert second.state == State.SUCCESS, second.message
    eid = first.execution_id
    assert (tmp_path / "produced").read_text() == "once\n", "the task that succeeded did not run again"
    assert engine.rows(
        "SELECT task_id, number, state FROM task_attempts WHERE execution_id = ? ORDER BY task_id, number", eid
    ) == [("after", 1, "SUCCESS"), ("fragile", 1, "FAILED"), ("fragile", 2, "SUCCESS"), ("produce", 1, "SUCCESS")]
    assert ("got 42",) in engine.rows("SELECT message FROM execution_logs WHERE execution_id = ? AND task_id = 'after'", eid)
    [(meta,)] = engine.rows("SELECT metadata FROM execution_audit_events WHERE execution_id = ? AND event_type = 'RESTARTED'", eid)
    assert json.loads(meta) == {
        "restarted_by": "user", "reason": "flag is set", "from_task": None, "tasks": ["after", "fragile"], "restart_count": 1
    }
    assert engine.rows("SELECT state, restart_count FROM executions WHERE id = ?", eid) == [("SUCCESS", 1)]
