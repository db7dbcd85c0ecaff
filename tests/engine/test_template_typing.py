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
        ("{% if inputs.x %}echo yes{% endif %}", "unsupported template tag {% if %}"),
        ("echo {# note #} hi", "unsupported template comment {# ... #}"),
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
