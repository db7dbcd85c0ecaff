"""Templates at run time: whole-value typing, text into string inputs, kept whitespace.

Real plugin processes and a real SQLite file (see conftest.py), as a user's run would be.
"""

from __future__ import annotations

import json

import pytest

from kestra_trio.errors import WorkflowInvalid
from kestra_trio.state.states import State


def plugin_lines(engine, task_id):
    return [m for (m,) in engine.rows("SELECT message FROM execution_logs WHERE task_id=? AND source LIKE 'plugin:%'", task_id)]


async def test_numbers_and_booleans_into_string_inputs_become_text(engine):
    result = await engine.run(
        """
id: typing
inputs:
  - {name: n, type: integer}
  - {name: ok, type: boolean, default: true}
tasks:
  - id: a
    type: core/python.script
    inputs: {script: "outputs['count'] = 2; outputs['ratio'] = 2.5; outputs['rows'] = [1, 2]"}
  - id: log-count
    type: core/log.message
    needs: [a]
    inputs: {message: "{{ tasks.a.outputs.count }}"}
  - id: log-ratio
    type: core/log.message
    needs: [a]
    inputs: {message: "{{ tasks.a.outputs.ratio }}"}
  - id: shell-n
    type: core/shell.run
    inputs: {command: "{{ inputs.ok }}", env: {FLAG: "{{ inputs.ok }}"}}
  - id: shell-env
    type: core/shell.run
    inputs:
      argv: [sh, -c, 'echo "$N $0"', "{{ inputs.n }}"]
      env: {N: "{{ inputs.n }}"}
  - id: python-list
    type: core/python.script
    needs: [a]
    inputs:
      script: "outputs['got'] = inputs['rows']"
      inputs: {rows: "{{ tasks.a.outputs.rows }}"}
""",
        inputs={"n": 0, "ok": True},
    )
    assert result.state == State.SUCCESS, result.error
    assert plugin_lines(engine, "log-count") == ["2"]
    assert plugin_lines(engine, "log-ratio") == ["2.5"]
    # the boolean ran as the shell command `true`; env values may be booleans, so FLAG stays one
    (inputs_json,) = engine.rows("SELECT inputs FROM task_runs WHERE task_id='shell-n'")[0]
    assert json.loads(inputs_json) == {"command": "true", "env": {"FLAG": True}}
    assert plugin_lines(engine, "shell-env") == ["0 0"]
    assert result.tasks["python-list"].outputs == {"got": [1, 2]}  # lists are never converted


async def test_whitespace_around_a_template_is_kept(engine):
    result = await engine.run(
        """
id: spaces
inputs:
  - {name: word, type: string, default: hi}
  - {name: n, type: integer, default: 2}
tasks:
  - id: a
    type: core/python.script
    inputs:
      script: "outputs['got'] = inputs"
      inputs:
        padded: "  {{ inputs.word }}  "
        block: |
          {{ inputs.n }}
        lead: " {{ inputs.n }}"
        whole: "{{ inputs.n }}"
""",
        inputs={"word": "hi", "n": 2},
    )
    assert result.state == State.SUCCESS, result.error
    assert result.tasks["a"].outputs == {"got": {"padded": "  hi  ", "block": "2\n", "lead": " 2", "whole": 2}}


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("{% include 'x.sh' %}echo yes", "unsupported template tag {% include %}"),
        ("echo {{ inputs.x.lower() }}", ".lower(): function and method calls are not supported"),
        ("echo {% raw %}{{.Id}}", "{% raw %} without {% endraw %}"),
        ("echo hi{% endraw %}", "{% endraw %} without {% raw %}"),
    ],
)
async def test_unsupported_syntax_stops_the_workflow_before_it_runs(engine, command, message):
    with pytest.raises(WorkflowInvalid) as info:
        await engine.run(
            f"""
id: jinja
inputs: [{{name: x, type: boolean, default: true}}]
tasks:
  - id: a
    type: core/shell.run
    inputs: {{command: {json.dumps(command)}}}
"""
        )
    assert [issue.path for issue in info.value.issues] == ["tasks[0].inputs.command"]
    assert message in info.value.issues[0].message


async def test_execution_context_variables_and_filters_reach_the_plugin(engine):
    """The context roots the engine knows today, through Jinja filters, in a real run."""
    result = await engine.run(
        """
id: context
namespace: team.data
variables:
  greeting: "hello {{ inputs.who | upper }}"
  regions: [eu, us]
inputs:
  - {name: who, type: string, default: ada}
tasks:
  - id: a
    type: core/python.script
    inputs:
      script: "outputs['got'] = inputs"
      inputs:
        execution: "{{ execution.id }}"
        started: "{{ execution.started_at | date('%Y') }}"
        where: "{{ workflow.namespace }}/{{ workflow.id }}"
        task: "{{ task.id }}#{{ task.attempt }}"
        greeting: "{{ vars.greeting }}"
        regions: "{{ vars.regions | join(',') }}"
        count: "{{ vars.regions | length }}"
        shout: "{% for r in vars.regions %}{{ r | upper }}{% if not loop.last %}-{% endif %}{% endfor %}"
        trigger: "{{ trigger.type }}"
""",
        inputs={"who": "ada"},
    )
    assert result.state == State.SUCCESS, result.error
    got = result.tasks["a"].outputs["got"]
    assert got["execution"] == result.execution_id
    assert got["started"].isdigit() and len(got["started"]) == 4
    assert (got["where"], got["task"], got["greeting"]) == ("team.data/context", "a#1", "hello ADA")
    assert (got["regions"], got["count"], got["shout"], got["trigger"]) == ("eu,us", 2, "EU-US", "manual")


async def test_a_template_past_its_limits_fails_the_task_not_the_engine(engine):
    result = await engine.run(
        """
id: hostile
tasks:
  - id: a
    type: core/log.message
    inputs: {message: "{{ 'x' * 10 ** 9 }}"}
"""
    )
    assert result.state == State.FAILED
    assert result.tasks["a"].reason_code == "TEMPLATE_ERROR"
    assert "a template value may have at most" in result.tasks["a"].error["message"]
