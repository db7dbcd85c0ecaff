"""validate_document: issue format, positions, catalog checks, and the published JSON Schema.

Rule-by-rule diagnostics live in the corpus (test_loading.py); this file covers what the
corpus cannot: the catalog, documents without positions, and schema/checker agreement.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kestra_trio.errors import WorkflowInvalid
from kestra_trio.model.catalog import ActionCatalog
from kestra_trio.model.loading import load_document, load_workflow_text
from kestra_trio.model.validation import SourceMap, ValidationIssue, join_path, validate_document, workflow_json_schema

CORPUS = Path(__file__).parent / "corpus"
EXAMPLES = Path(__file__).parents[2] / "examples"

SHELL_SCHEMA = {
    "type": "object",
    "properties": {
        "command": {"type": "string", "minLength": 1},
        "argv": {"type": "array", "items": {"type": "string"}},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "oneOf": [{"required": ["command"]}, {"required": ["argv"]}],
    "additionalProperties": False,
}
SLEEP_SCHEMA = {"type": "object", "properties": {"seconds": {"type": "number"}}, "required": ["seconds"]}
LOG_SCHEMA = {
    "type": "object",
    "properties": {"message": {"type": "string"}, "level": {"enum": ["DEBUG", "INFO", "WARN", "ERROR"]}},
    "required": ["message"],
    "additionalProperties": False,
}


class FakeCatalog:
    """Three actions, like the bundled plugins; unknown ones raise LookupError as the registry does."""

    schemas: Mapping[str, Mapping[str, Any] | None] = {
        "core/shell.run": SHELL_SCHEMA,
        "core/util.sleep": SLEEP_SCHEMA,
        "core/log.message": LOG_SCHEMA,
        "core/util.noop": None,
    }

    def known_types(self) -> list[str]:
        return list(self.schemas)

    def input_schema(self, task_type: str) -> Mapping[str, Any] | None:
        if task_type == "core/shel.run":
            raise LookupError("unknown plugin 'core/shel' (did you mean core/shell?)")
        if task_type not in self.schemas:
            raise LookupError(f"unknown task type {task_type!r}")
        return self.schemas[task_type]


def issues_for(text: str, catalog: ActionCatalog | None = None) -> list[str]:
    data, source, load_issues = load_document(text, "wf.yaml")
    return [str(issue) for issue in sorted(load_issues + validate_document(data, source, "wf.yaml", catalog))]


def test_issue_str() -> None:
    issue = ValidationIssue("wf.yaml", 14, 11, "tasks[2].type", "must match namespace/plugin.action (e.g. core/shell.run)")
    assert str(issue) == "wf.yaml:14:11 tasks[2].type: must match namespace/plugin.action (e.g. core/shell.run)"
    assert str(ValidationIssue("wf.yaml", 1, 1, "", "missing required key 'id'")) == "wf.yaml:1:1: missing required key 'id'"


def test_join_path() -> None:
    assert join_path("", "tasks") == "tasks"
    assert join_path("tasks", 2) == "tasks[2]"
    assert join_path("tasks[2].inputs", "env") == "tasks[2].inputs.env"
    assert join_path("tasks[2].inputs", "my key") == 'tasks[2].inputs["my key"]'


def test_source_map_falls_back_to_parents() -> None:
    source = SourceMap(values={"": (1, 1), "tasks": (3, 3), "tasks[0]": (3, 5), 'x["a.b"]': (9, 9)})
    assert source.value_at("tasks[0].inputs.command") == (3, 5)
    assert source.value_at('x["a.b"].c') == (9, 9)
    assert source.value_at("nope.deeper") == (1, 1)


def test_validate_document_without_positions() -> None:
    issues = validate_document({"id": "x", "tasks": [{"id": "a"}]}, None, "mem")
    assert [str(i) for i in issues] == ["mem:1:1 tasks[0]: missing required key 'type'"]
    assert validate_document({"id": "x", "tasks": [{"id": "a", "type": "core/log.message"}]}, {}, "mem") == []
    assert [str(i) for i in validate_document([1], {}, "mem")] == ["mem:1:1: top level must be a mapping (id, tasks, ...), got a list"]


def test_every_problem_is_reported_at_once_and_sorted() -> None:
    text = """\
id: x
tasks:
  - id: a
    type: bad
    needs: [zz]
    retry: {max: 0}
  - id: a
    type: core/shell.run
    timeout: soon
secrets: {K: v}
"""
    assert issues_for(text) == [
        "wf.yaml:4:11 tasks[0].type: must match namespace/plugin.action (e.g. core/shell.run)",
        "wf.yaml:5:13 tasks[0].needs[0]: unknown task 'zz'",
        "wf.yaml:6:18 tasks[0].retry.max: must be at least 1 (the total number of attempts), got 0",
        "wf.yaml:7:9 tasks[1].id: duplicate task id 'a' (first used on line 3)",
        "wf.yaml:9:14 tasks[1].timeout: invalid duration 'soon' (examples: 500ms, 30s, 5m, 2h, 1d)",
        "wf.yaml:10:1 secrets: secrets never live in a workflow file; use {{ secrets.NAME }} with KESTRA_TRIO_SECRET_NAME",
    ]


def test_templates_see_transitive_needs_and_secrets_are_not_declared() -> None:
    text = """\
id: x
tasks:
  - {id: a, type: core/shell.run}
  - {id: b, type: core/shell.run, needs: [a]}
  - id: c
    type: core/log.message
    needs: [b]
    inputs: {message: "{{ tasks.a.outputs.x }} {{ secrets.ANY_NAME }}"}
"""
    assert issues_for(text) == []


# -- with a plugin catalog -------------------------------------------------------------------


def test_catalog_unknown_types() -> None:
    text = """\
id: x
tasks:
  - {id: a, type: core/shel.run}
  - {id: b, type: core/shell.runn}
  - {id: c, type: core/util.noop, inputs: {anything: [1, 2]}}
"""
    assert issues_for(text, FakeCatalog()) == [
        "wf.yaml:3:19 tasks[0].type: unknown plugin 'core/shel' (did you mean core/shell?)",
        "wf.yaml:4:19 tasks[1].type: unknown task type 'core/shell.runn' (did you mean 'core/shell.run'?)",
    ]


def test_catalog_input_schemas() -> None:
    text = """\
id: x
inputs: [{name: n, type: number}]
tasks:
  - id: a
    type: core/shell.run
    inputs: {comand: ls}
  - id: b
    type: core/shell.run
    inputs: {command: ls, argv: [ls], env: {A: 1}}
  - id: c
    type: core/util.sleep
    inputs: {seconds: soon}
  - id: d
    type: core/log.message
    inputs: {message: hi, level: LOUD}
  - id: e
    type: core/util.sleep
"""
    assert issues_for(text, FakeCatalog()) == [
        "wf.yaml:6:13 tasks[0].inputs: needs exactly one of: command, argv",
        "wf.yaml:6:13 tasks[0].inputs: unknown input 'comand' (did you mean 'command'?)",
        "wf.yaml:9:13 tasks[1].inputs: give only one of: command, argv (got command, argv)",
        "wf.yaml:9:48 tasks[1].inputs.env.A: must be a string, got an integer",
        "wf.yaml:12:23 tasks[2].inputs.seconds: must be a number, got a string",
        "wf.yaml:15:34 tasks[3].inputs.level: must be one of DEBUG, INFO, WARN, ERROR, got 'LOUD'",
        "wf.yaml:16:5 tasks[4].inputs: missing required input 'seconds'",
    ]


def test_catalog_skips_templated_values_but_checks_the_rest() -> None:
    text = """\
id: x
inputs: [{name: n, type: number}, {name: cmd}]
tasks:
  - id: a
    type: core/util.sleep
    inputs: {seconds: "{{ inputs.n }}"}
  - id: b
    type: core/shell.run
    inputs: {argv: "{{ inputs.cmd }}", env: {A: "{{ inputs.n }}", B: 2}}
"""
    assert issues_for(text, FakeCatalog()) == ["wf.yaml:9:70 tasks[1].inputs.env.B: must be a string, got an integer"]


def test_catalog_is_silent_on_scalars_templated_into_string_inputs() -> None:
    # at run time a number or boolean templated as a whole into a string input becomes text
    text = """\
id: x
inputs: [{name: n, type: integer}, {name: ok, type: boolean}]
tasks:
  - id: a
    type: core/log.message
    inputs: {message: "{{ inputs.n }}"}
  - id: b
    type: core/shell.run
    inputs: {command: "{{ inputs.ok }}", env: {N: "{{ inputs.n }}"}}
  - id: c
    type: core/shell.run
    inputs: {argv: [echo, "{{ inputs.n }}"]}
"""
    assert issues_for(text, FakeCatalog()) == []


def test_unsupported_template_syntax_is_located_and_not_called_malformed() -> None:
    text = """\
id: x
tasks:
  - id: a
    type: core/shell.run
    inputs:
      command: "{% include 'x' %}ls ${#HOME}"
      env: {A: "{# note #}", B: "{% raw %}{% if %}{{ x }}{% endraw %}", C: "{% raw %}{{ x }}", D: "{{ inputs.x }}{% endraw %}"}
"""
    assert issues_for(text, FakeCatalog()) == [
        "wf.yaml:6:16 tasks[0].inputs.command: unsupported template tag {% include %}: templates support "
        "{{ expressions }}, filters, {% if %}, {% for %}, {% set x = ... %}, {% with %} and {% raw %}...{% endraw %}",
        "wf.yaml:7:76 tasks[0].inputs.env.C: malformed template: {% raw %} without {% endraw %}",
        "wf.yaml:7:99 tasks[0].inputs.env.D: malformed template: {% endraw %} without {% raw %}",
    ]


def test_raw_blocks_are_not_checked_against_the_schema_as_written() -> None:
    # `{% raw %}` text is only final after rendering: an enum/pattern check would be wrong
    text = """\
id: x
tasks:
  - {id: a, type: core/log.message, inputs: {message: hi, level: "{% raw %}{% endraw %}INFO"}}
"""
    assert issues_for(text, FakeCatalog()) == []


def test_catalog_with_a_broken_schema() -> None:
    class Broken(FakeCatalog):
        def input_schema(self, task_type: str) -> Mapping[str, Any] | None:
            return {"type": "no-such-type"}

    [line] = issues_for("id: x\ntasks: [{id: a, type: core/x.y}]\n", Broken())
    assert "the plugin's input schema is invalid" in line


def test_load_workflow_text_uses_the_catalog() -> None:
    with pytest.raises(WorkflowInvalid) as info:
        load_workflow_text("id: x\ntasks: [{id: a, type: core/util.sleep}]\n", "wf.yaml", catalog=FakeCatalog())
    assert [str(i) for i in info.value.issues] == ["wf.yaml:2:9 tasks[0].inputs: missing required input 'seconds'"]


# -- the JSON Schema agrees with the checker --------------------------------------------------


def schema_validator() -> jsonschema.Draft202012Validator:
    schema = workflow_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", sorted((CORPUS / "valid").glob("*.yaml")) + sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_valid_files_match_the_json_schema(path: Path) -> None:
    data, _, _ = load_document(path.read_text(encoding="utf-8"))
    assert list(schema_validator().iter_errors(data)) == []


SHAPE_ERRORS = [
    "missing_id", "missing_tasks", "unknown_key_did_you_mean", "unknown_top_key", "wrong_types", "bad_id_format",
    "bad_type_format", "bad_duration", "cron_without_schedule", "bad_retry", "secrets_key", "bad_security",
    "empty_tasks", "tasks_not_list", "bad_permissions", "bad_input_declaration", "task_not_mapping",
    "bad_sandbox",
    "flow_keys_did_you_mean", "bad_flow_values", "bad_triggers", "subflow_inputs",
]


@pytest.mark.parametrize("name", SHAPE_ERRORS)
def test_shape_errors_also_fail_the_json_schema(name: str) -> None:
    data, _, _ = load_document((CORPUS / "broken" / f"{name}.yaml").read_text(encoding="utf-8"))
    assert not schema_validator().is_valid(data)


def test_schema_has_descriptions_and_is_closed() -> None:
    schema = workflow_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    task = schema["properties"]["tasks"]["items"]
    assert task["additionalProperties"] is False
    assert all("description" in prop for prop in task["properties"].values())


ANY_KEY = st.sampled_from(["id", "tasks", "type", "needs", "inputs", "retry", "trigger", "permissions", "name", "default"]) | st.text(max_size=6) | st.integers()
ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.sampled_from(["{{ tasks.a.outputs.x }}", "{{ inputs.a }}", "5s", "a"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_KEY, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(ANY_VALUE)
def test_validate_document_never_raises(document: object) -> None:
    issues = validate_document(document, None, "fuzz", FakeCatalog())
    assert all(isinstance(issue, ValidationIssue) for issue in issues)


def test_retry_backoff_long_form_is_accepted_and_checked():
    from kestra_trio.errors import WorkflowInvalid
    from kestra_trio.model.loading import load_workflow_text

    text = """
id: r
tasks:
  - id: a
    type: core/shell.run
    retry: {max: 4, backoff: {type: exponential, delay: 200ms, max_delay: 1s}}
    inputs: {command: "true"}
"""
    policy = load_workflow_text(text, "wf.yaml").tasks[0].retry
    assert (policy.max_attempts, policy.backoff, policy.delay, policy.max_delay) == (4, "exponential", 0.2, 1.0)
    bad = text.replace("type: exponential", "type: linear").replace("max_delay: 1s", "max_delay: 100ms")
    try:
        load_workflow_text(bad, "wf.yaml")
    except WorkflowInvalid as exc:
        messages = [f"{i.path}: {i.message}" for i in exc.issues]
    else:
        raise AssertionError("invalid backoff accepted")
    assert any(m.startswith("tasks[0].retry.backoff.type: must be one of constant, exponential") for m in messages)
    assert any(m.startswith("tasks[0].retry.backoff.delay: delay must not be longer") for m in messages)


def test_upstream_sets_are_right_on_diamonds_cycles_and_deep_chains() -> None:
    from kestra_trio.model.validation import _Upstream

    diamond = _Upstream({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []})
    assert diamond.has("d", "a") and diamond.has("d", "b") and diamond.has("b", "a")
    assert not diamond.has("b", "c") and not diamond.has("d", "e") and not diamond.has("a", "d")
    cycle = _Upstream({"x": ["y"], "y": ["x"], "z": ["y"]})  # reported elsewhere; must terminate
    assert cycle.has("z", "x") and cycle.has("x", "y")
    n = 10_000  # iterative: no recursion limit
    chain = _Upstream({f"t{i}": [f"t{i - 1}"] if i else [] for i in range(n)})
    assert chain.has(f"t{n - 1}", "t0") and not chain.has("t0", f"t{n - 1}")


# -- numbers SQLite and the clock can take ---------------------------------------------------

HUGE = 99999999999999999999999


def test_retry_max_and_concurrency_limits_have_ceilings() -> None:
    text = f"""id: w
concurrency: {{limit: {HUGE}}}
tasks:
  - id: a
    type: core/shell.run
    inputs: {{command: "true"}}
    retry: {{max: {HUGE}}}
  - id: b
    type: core/shell.run
    inputs: {{command: "true"}}
    retry: {{max: 1001}}
"""
    assert issues_for(text) == [
        f"wf.yaml:2:22 concurrency.limit: must be a whole number of executions from 1 to 1000, got {HUGE}",
        f"wf.yaml:7:18 tasks[0].retry.max: must be at most 1000 attempts, got {HUGE}",  # once, not also as int64
        "wf.yaml:11:18 tasks[1].retry.max: must be at most 1000 attempts, got 1001",
    ]
    at_the_limit = text.replace(str(HUGE), "1000").replace("1001", "1")
    assert issues_for(at_the_limit) == []
    schema = schema_validator()
    data, _, _ = load_document(at_the_limit)
    assert schema.is_valid(data)
    data["tasks"][0]["retry"]["max"] = 1001
    assert not schema.is_valid(data)
    data["tasks"][0]["retry"]["max"] = 1
    data["concurrency"]["limit"] = 1001
    assert not schema.is_valid(data)


def test_any_whole_number_outside_int64_is_refused_where_it_is_written() -> None:
    text = f"""id: w
inputs:
  - {{name: n, type: integer, default: -{HUGE}}}
variables: {{big: [1, {HUGE}]}}
outputs: {{fine: {2**63 - 1}, low: {-(2**63)}}}
tasks:
  - id: a
    type: core/util.sleep
    inputs: {{seconds: {2**63}}}
"""
    message = "is out of range: whole numbers must be between -2^63 and 2^63-1"
    assert issues_for(text) == [
        f"wf.yaml:3:39 inputs[0].default: the integer -99999999999... (23 digits) {message}",
        f"wf.yaml:4:22 variables.big[1]: the integer 999999999999... (23 digits) {message}",
        f"wf.yaml:9:23 tasks[0].inputs.seconds: the integer 922337203685... (19 digits) {message}",
    ]
    # a plugin schema's own problem with the value is the clearer message, and the only one
    bounded = issues_for(text.replace("core/util.sleep", "core/shell.run").replace("seconds", "command"), FakeCatalog())
    assert [line for line in bounded if "tasks[0]" in line] == [
        "wf.yaml:9:23 tasks[0].inputs.command: must be a string, got an integer"
    ]


def test_resources_have_ceilings() -> None:
    text = """id: w
security: restricted
permissions:
  resources: {memory: 2048Ti, file_size: 1024Ti, processes: 4194305, cpu_seconds: 315360001}
tasks:
  - {id: a, type: core/shell.run, inputs: {command: "true"}}
"""
    assert issues_for(text) == [
        "wf.yaml:4:23 permissions.resources.memory: must be at most 1024Ti",
        "wf.yaml:4:61 permissions.resources.processes: must be a whole number from 1 to 4194304, got 4194305",
        "wf.yaml:4:83 permissions.resources.cpu_seconds: must be a number of seconds above 0, at most 315360000 (10 years), got 315360001",
    ]


def test_labels_must_be_utf8_text() -> None:
    from kestra_trio.model.flow_checks import label_problem

    assert label_problem("team", "caf\udce9") == "label 'team' is not valid UTF-8 text"
    assert label_problem("team", "café") is None
