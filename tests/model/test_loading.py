"""Loading YAML into a Workflow: the broken/valid corpus, file-level errors, hostile input.

Each `corpus/broken/NAME.yaml` has a sibling `NAME.expected` holding the exact lines that
`kestra-trio validate` prints for it (validated without a plugin catalog). A line ending in
`…` gives only the start: what follows is the YAML parser's own description of a syntax
error, whose words differ between libyaml and PyYAML's pure-Python parser (and may change in
any PyYAML release); the file, line, column and `not valid YAML:` are ours.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kestra_trio.errors import WorkflowError, WorkflowInvalid
from kestra_trio.model.loading import MAX_DEPTH, load_document, load_workflow, load_workflow_text
from kestra_trio.model.workflow import CronTrigger, Resources, RetryPolicy, Workflow

CORPUS = Path(__file__).parent / "corpus"
BROKEN = sorted((CORPUS / "broken").glob("*.yaml"))
VALID = sorted((CORPUS / "valid").glob("*.yaml"))
EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


def diagnostics(path: Path) -> list[str]:
    """What `kestra-trio validate` prints for a file, as lines."""
    try:
        load_workflow(path.name if path.parent == Path.cwd() else path)
    except WorkflowInvalid as exc:
        return [str(issue) for issue in exc.issues]
    except WorkflowError as exc:
        return [str(exc)]
    return []


def test_corpus_is_big_enough() -> None:
    assert len(BROKEN) >= 25 and len(VALID) >= 3 and len(EXAMPLES) == 15


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_corpus(path: Path, monkeypatch: pytest.MonkeyPatch, yaml_parser: str) -> None:
    monkeypatch.chdir(path.parent)  # diagnostics name the file as given: relative
    expected = (path.with_suffix(".expected")).read_text(encoding="utf-8").splitlines()
    got = diagnostics(Path(path.name))
    assert len(got) == len(expected), got
    for line, want in zip(got, expected):
        assert line.startswith(want[:-1]) and len(line) > len(want) - 1 if want.endswith("…") else line == want


@pytest.mark.parametrize("path", VALID + EXAMPLES, ids=[p.stem for p in VALID + EXAMPLES])
def test_valid_corpus_and_examples(path: Path) -> None:
    workflow = load_workflow(path)
    assert isinstance(workflow, Workflow)
    assert workflow.source_path == str(path)


def test_built_workflow_values() -> None:
    wf = load_workflow(CORPUS / "valid" / "everything.yaml")
    assert (wf.id, wf.namespace, wf.enabled, wf.security, wf.timeout) == ("everything", "team.data", False, "restricted", 3600.0)
    assert wf.triggers == (CronTrigger(id="trigger", cron="*/15 * * * *"),)
    assert [(i.name, i.type, i.required) for i in wf.inputs] == [
        ("day", "string", True),
        ("limit", "integer", False),
        ("ratio", "number", False),
        ("dry-run", "boolean", False),
        ("options", "json", False),
        ("note", "string", False),
    ]
    assert wf.permissions.network == ("api.example.com",)
    assert wf.permissions.filesystem_read == ("/data",) and wf.permissions.filesystem_write == ("/tmp/out",)
    assert wf.permissions.resources == Resources(memory=256 * 2**20, cpu_seconds=60.0, processes=64, file_size=100 * 2**20)
    assert wf.sandbox_of(wf.task("extract")) == ("bubblewrap", None)
    assert wf.sandbox_of(wf.task("transform")) == ("docker", "python:3.12-slim")
    extract = wf.task("extract")
    assert extract.retry == RetryPolicy(max_attempts=5, backoff="exponential", delay=0.5, max_delay=10.0)
    assert extract.timeout == 120.0
    assert wf.task("report").timeout is None  # no default time limit
    assert wf.task("report").needs == ("transform",)
    assert extract.inputs["headers"] == {"Authorization": "Bearer {{ secrets.API_TOKEN }}"}


def test_scalars_stay_json_values() -> None:
    data, _, _ = load_document("a: 2024-01-01\nb: 0x10\nc: 'yes'\nd: yes\ne: ~\nf: !!str 12\ng: 1.5\n")
    assert data == {"a": "2024-01-01", "b": 16, "c": "yes", "d": "yes", "e": None, "f": "12", "g": 1.5}


YAML_1_1_BOOLEANS = ["yes", "no", "on", "off", "y", "n", "Yes", "NO", "On", "OFF", "Y", "N"]


@pytest.mark.parametrize("word", YAML_1_1_BOOLEANS)
def test_yaml_1_1_booleans_are_text_everywhere(yaml_parser: str, word: str) -> None:
    """YAML 1.2's core schema, as Kestra reads a flow: only true and false are booleans."""
    text = (
        f"id: {word}\ninputs:\n  - {{name: flag, type: string, default: {word}}}\ntasks:\n"
        f"  - id: {word}\n    type: core/shell.run\n    inputs: {{command: {word}, env: {{{word}: {word}}}}}\n"
        f"  - {{id: b, type: core/log.message, needs: [{word}], inputs: {{message: [{word}]}}}}\n"
    )
    workflow = load_workflow_text(text, "wf.yaml")
    assert workflow.id == workflow.tasks[0].id == workflow.inputs[0].default == word
    assert workflow.tasks[0].inputs == {"command": word, "env": {word: word}}
    assert workflow.tasks[1].needs == (word,) and workflow.tasks[1].inputs == {"message": [word]}


def test_true_and_false_are_the_booleans(yaml_parser: str) -> None:
    data, _, _ = load_document("a: [true, True, TRUE, false, False, FALSE, tRUE, 'true', !!str false]\n")
    assert data == {"a": [True, True, True, False, False, False, "tRUE", "true", "false"]}


def test_a_yaml_1_1_boolean_where_a_boolean_is_needed_says_why() -> None:
    text = "id: a\nenabled: yes\ninputs:\n  - {name: f, type: boolean, default: off}\ntasks:\n  - {id: t, type: core/log.message}\n"
    with pytest.raises(WorkflowInvalid) as info:
        load_workflow_text(text, "wf.yaml")
    assert [str(issue) for issue in info.value.issues] == [
        "wf.yaml:2:10 enabled: must be true or false, got the text 'yes' (only true and false are booleans)",
        "wf.yaml:4:39 inputs[0].default: default must be true or false (the input's type is boolean), "
        "got the text 'off' (only true and false are booleans)",
    ]


def test_positions_are_recorded() -> None:
    _, source, _ = load_document("id: x\ntasks:\n  - id: a\n    type: core/log.message\n")
    assert source.value_at("tasks[0].type") == (4, 11)
    assert source.key_at("tasks[0].type") == (4, 5)
    assert source.value_at("tasks[0].missing") == (3, 5)  # falls back to the task


def test_invalid_message_names_the_first_problem_and_the_count() -> None:
    with pytest.raises(WorkflowInvalid) as info:
        load_workflow_text("id: x\ntasks: []\nfoo: 1\n", "wf.yaml")
    assert str(info.value) == (
        "wf.yaml:2:8 tasks: a workflow needs at least one task (and 1 more; run `kestra-trio validate wf.yaml`)"
    )
    assert len(info.value.issues) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "wf.yaml: file is empty; a workflow needs at least id and tasks"),
        ("~\n", "wf.yaml: file is empty; a workflow needs at least id and tasks"),
        ("just text", "wf.yaml: top level must be a mapping (id: ..., tasks: ...), got a single value"),
        ("a: [1, 2\n", "wf.yaml:2:1: not valid YAML: …"),
        ("a: \x01\n", "wf.yaml: not valid YAML: … (at character 3)"),
        ("a: *nope\n", "wf.yaml:1:4: unknown alias *nope (define &nope before using it)"),
        ("a: &x [1, *x]\n", "wf.yaml:1:11: unknown alias *x (define &x before using it)"),
        ("? [a]\n: b\n", "wf.yaml:1:3: mapping keys must be plain text, not a list or mapping"),
        ("a: !!set {x}\n", "wf.yaml:1:4: unsupported YAML tag '!!set' (only plain values, lists and mappings are allowed)"),
        ("a: !custom 1\n", "wf.yaml:1:4: unsupported YAML tag '!custom' (only plain values, lists and mappings are allowed)"),
        ("a: !!int abc\n", "wf.yaml:1:4: 'abc' is not a valid !!int value"),
        ("a: !!binary aGk=\n", "wf.yaml:1:4: unsupported YAML tag '!!binary' (only plain values, lists and mappings are allowed)"),
        ("b: &m {x: 1}\na:\n  <<: *m\n", "wf.yaml:3:3: merge keys (<<) are not supported; write the keys out"),
        ("a: \ud800\n", "wf.yaml: not valid text (contains unpaired surrogates)"),
    ],
)
def test_file_level_errors(text: str, message: str, yaml_parser: str) -> None:
    """`…` stands for the YAML parser's own words (see the module docstring)."""
    with pytest.raises(WorkflowError) as info:
        load_workflow_text(text, "wf.yaml")
    assert not isinstance(info.value, WorkflowInvalid)
    before, _, after = message.partition("…")
    assert re.fullmatch(re.escape(before) + (r"\S.*" + re.escape(after) if _ else ""), str(info.value)), str(info.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match=re.escape(f"missing.yaml: cannot read file: {os.strerror(errno.ENOENT)}") + "$"):
        load_workflow(tmp_path / "missing.yaml")
    with pytest.raises(WorkflowError, match="is a directory, not a workflow file"):
        load_workflow(tmp_path)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("id: caf\xe9\n".encode("latin-1"))
    with pytest.raises(WorkflowError, match=r"not UTF-8 text \(invalid byte at offset 7\); save it as UTF-8"):
        load_workflow(latin1)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfid: bom\ntasks:\n  - {id: a, type: core/log.message}\n")
    assert load_workflow(path).id == "bom"


@pytest.fixture(params=["libyaml", "pure-python"])
def yaml_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with libyaml's parser and with PyYAML's own: users have either."""
    if request.param == "pure-python":
        monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    elif not yaml.__with_libyaml__:
        pytest.skip("this PyYAML was built without libyaml")
    return request.param


DENSE = "[" * 2000
TOO_DEEP = f"nesting is deeper than {MAX_DEPTH} levels; a workflow does not need that"


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("[" * 200_000, 64),  # libyaml >= 6.0.4 stops by itself at 1,000 levels, libyaml < 6.0.4 never
        ("{a: " * 200_000, 4 * 64),
        ("a: " + "[" * 100_000 + "]" * 100_000, 3 + 63),  # the mapping is level 1
        ("- " * 100_000 + "x", 2 * 64),
        ("a: ['" + DENSE + "', " + DENSE, len("a: ['" + DENSE + "', ") + 62),  # brackets in quotes are text
        ("x:\n  y: [ # c [[[\n " + DENSE, len("x:\n  y: [ # c [[[\n ") + 61),  # ... and in comments
    ],
    ids=["flow-lists", "flow-mappings", "under-a-key", "block-lists", "quoted-brackets", "commented-brackets"],
)
def test_deep_nesting_is_refused_at_the_level_past_the_limit(yaml_parser: str, text: str, offset: int) -> None:
    """Whatever the parser's own limit, the first level past ours is named, in our words."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    with pytest.raises(WorkflowError) as info:
        load_workflow_text(text, "wf.yaml")
    assert str(info.value) == f"wf.yaml:{line}:{column}: {TOO_DEEP}"


def test_nesting_up_to_the_limit_loads(yaml_parser: str) -> None:
    text = "id: deep\ntasks:\n  - {id: a, type: core/log.message, inputs: {v: " + "[" * (MAX_DEPTH - 4) + "]" * (MAX_DEPTH - 4) + "}}\n"
    value = load_workflow_text(text, "wf.yaml").tasks[0].inputs["v"]
    for _ in range(MAX_DEPTH - 5):
        [value] = value
    assert value == []


def test_billion_laughs_is_refused_where_the_count_goes_past_the_limit(yaml_parser: str) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    with pytest.raises(WorkflowError) as info:
        load_workflow_text("\n".join(levels), "wf.yaml")
    # refused at the alias of a5 that takes the count past 1,000,000, long before 10^10 values exist
    assert str(info.value) == "wf.yaml:6:45: more than 1,000,000 values (after expanding aliases); a workflow does not need that"


# -- fuzzing: anything in, only a Workflow / WorkflowError / WorkflowInvalid out -------------

YAMLISH = st.lists(
    st.sampled_from(list("abcdeist:-[]{}&*!|>'\"#%@`?,.\n \t0123456789~\x00\ufeff\u2028é") + ["{{", "}}", "id: ", "tasks:", "- ", "type: ", "\n  ", "!!python/name:os.system", "<<: "]),
    max_size=80,
).map("".join)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
KEYS = st.sampled_from(["id", "tasks", "type", "needs", "inputs", "retry", "max", "timeout", "name", "trigger", "schedule", "permissions", "security", "default", "secrets"]) | st.text(max_size=8)
DOCUMENTS = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5), max_leaves=30)
TASK = st.fixed_dictionaries(
    {"id": st.sampled_from(["a", "b", "c", "bad id"]), "type": st.sampled_from(["core/shell.run", "x"])},
    optional={
        "needs": st.lists(st.sampled_from(["a", "b", "c", "z"]), max_size=3) | SCALARS,
        "inputs": st.dictionaries(st.text(max_size=5), st.sampled_from(["{{ tasks.a.outputs.x }}", "{{ inputs.p }}", "{{", "plain"]) | SCALARS, max_size=3),
        "retry": st.dictionaries(st.sampled_from(["max", "delay", "backoff", "max_delay"]), SCALARS | st.sampled_from(["1s", "200ms", "exponential"])),
        "timeout": SCALARS | st.sampled_from(["1s", "5m", "0s"]),
    },
)
WORKFLOWS = st.fixed_dictionaries(
    {"id": st.sampled_from(["wf", "", "x y"]), "tasks": st.lists(TASK, max_size=4)},
    optional={"inputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["p", "q"])}, optional={"type": st.sampled_from(["string", "integer", "json", "bad"]), "default": SCALARS})), "trigger": DOCUMENTS},
)


def assert_loads_cleanly(text: str) -> None:
    try:
        result = load_workflow_text(text, "fuzz.yaml")
    except WorkflowInvalid as exc:
        assert exc.issues and all(str(issue).startswith("fuzz.yaml:") for issue in exc.issues)
    except WorkflowError as exc:
        assert "\n" not in str(exc).strip()
    else:
        assert isinstance(result, Workflow)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(YAMLISH)
def test_fuzz_yamlish_text(text: str) -> None:
    assert_loads_cleanly(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS | WORKFLOWS)
def test_fuzz_documents(document: object) -> None:
    assert_loads_cleanly(yaml.safe_dump(document, allow_unicode=True))


def test_ten_thousand_task_workflow_loads() -> None:
    """The time it takes is scripts/bench_model.py's."""
    lines = ["id: big", "tasks:", "  - {id: t0, type: core/shell.run}"]
    lines += [
        f"  - {{id: t{i}, type: core/shell.run, needs: [t{i - 1}], inputs: {{command: 'echo {{{{ tasks.t{i - 1}.outputs.x }}}}'}}}}"
        for i in range(1, 10_000)
    ]
    workflow = load_workflow_text("\n".join(lines))
    assert len(workflow.tasks) == 10_000 and workflow.tasks[-1].needs == ("t9998",)


@pytest.mark.parametrize("ending", ["---\n", "---\n...\n", "...\n---\n", "--- \n"])
def test_a_trailing_empty_document_is_not_a_second_workflow(ending: str) -> None:
    text = "id: a\ntasks:\n  - id: t\n    type: core/shell.run\n    inputs: {command: 'true'}\n" + ending
    assert load_workflow_text(text, "wf.yaml").id == "a"


def test_a_second_document_with_content_is_refused() -> None:
    text = "id: a\ntasks:\n  - id: t\n    type: core/shell.run\n---\nid: b\n"
    with pytest.raises(WorkflowError, match=r"wf.yaml:5:1: only one YAML document is allowed per file"):
        load_workflow_text(text, "wf.yaml")
