"""The {{ ... }} mini-language: finding references, rendering, and its error messages."""

from __future__ import annotations

from typing import Any

import pytest

from kestra_trio.errors import KestraTrioError
from kestra_trio.model.templates import (
    Reference,
    TemplateError,
    find_references,
    has_template,
    parse_expression,
    render,
    scan_string,
)

OUTPUTS = {"a": {"count": 2, "rows": [{"id": 7}, {"id": 8}]}, "empty": {}}
INPUTS = {"name": "world", "n": 3, "cfg": {"tags": ["x", "y"]}, "none": None}
SECRETS = {"API_KEY": "s3cr3t"}


def do_render(value: Any) -> Any:
    return render(value, inputs=INPUTS, task_outputs=OUTPUTS, secret=SECRETS.get)


def test_find_references_walks_nested_values_in_order() -> None:
    value = {
        "a": "{{ inputs.name }} and {{tasks.a.outputs.rows.0.id}}",
        "b": [1, {"c": "{{ secrets.API_KEY }}"}],
        "d": None,
    }
    assert find_references(value) == [
        Reference("inputs", ("name",), "{{ inputs.name }}"),
        Reference("tasks", ("a", "outputs", "rows", "0", "id"), "{{ tasks.a.outputs.rows.0.id }}"),
        Reference("secrets", ("API_KEY",), "{{ secrets.API_KEY }}"),
    ]
    ref = find_references("{{ tasks.a.outputs.rows.0 }}")[0]
    assert ref.name == "a" and ref.output_path == ("rows", "0")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "empty template"),
        ("env.HOME", "unknown root 'env' (use inputs, tasks or secrets)"),
        ("inputs", "name what to use"),
        ("tasks.a", "only tasks.<id>.outputs... can be used"),
        ("tasks.a.stdout", "only tasks.<id>.outputs... can be used"),
        ("secrets.A.B", "write a secret as secrets.NAME"),
        ("inputs.name | upper", "only a dotted path"),
        ("inputs..name", "only a dotted path"),
        ("__import__('os')", "only a dotted path"),
    ],
)
def test_parse_expression_errors(expression: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("|", r"\|").replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        parse_expression(expression)


def test_unclosed_template_is_reported_with_every_other_problem() -> None:
    items = scan_string("{{ inputs.a }} {{ env.X }} {{ inputs.b")
    assert isinstance(items[0], Reference)
    assert [str(i) for i in items[1:]] == [
        "{{ env.X }}: unknown root 'env' (use inputs, tasks or secrets)",
        "'{{' without a closing '}}' in '{{ inputs.b'",
    ]
    with pytest.raises(TemplateError):
        find_references(["ok", "{{ inputs.b"])


def test_template_error_is_a_kestra_trio_error() -> None:
    assert issubclass(TemplateError, KestraTrioError)


def test_has_template() -> None:
    assert has_template({"a": ["x", "{{ inputs.n }}"]})
    assert not has_template({"a": ["x", 1, None]})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ inputs.n }}", 3),  # a whole-string template keeps the JSON type
        ("  {{ inputs.cfg }}  ", {"tags": ["x", "y"]}),
        ("{{ tasks.a.outputs.rows }}", [{"id": 7}, {"id": 8}]),
        ("{{ tasks.a.outputs }}", OUTPUTS["a"]),
        ("{{ inputs.none }}", None),
        ("id={{ tasks.a.outputs.rows.1.id }}", "id=8"),
        ("hello {{inputs.name}}, n={{ inputs.n }}", "hello world, n=3"),
        ("cfg: {{ inputs.cfg }}", 'cfg: {"tags": ["x", "y"]}'),
        ("none: {{ inputs.none }}", "none: null"),
        ("{{ secrets.API_KEY }}", "s3cr3t"),
        ('json {"a": {"b": 1}}', 'json {"a": {"b": 1}}'),  # `}}` alone is not a template
        ({"k": ["{{ inputs.cfg.tags.0 }}", 5, True]}, {"k": ["x", 5, True]}),
    ],
)
def test_render(value: Any, expected: Any) -> None:
    assert do_render(value) == expected


def test_render_does_not_change_its_input() -> None:
    value = {"a": ["{{ inputs.n }}"]}
    do_render(value)
    assert value == {"a": ["{{ inputs.n }}"]}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{{ tasks.a.outputs.missing }}", "{{ tasks.a.outputs.missing }}: task 'a' has no output 'missing' (has: count, rows)"),
        ("{{ secrets.API_TOKEN }}", "{{ secrets.API_TOKEN }}: secret API_TOKEN is not set (set KESTRA_TRIO_SECRET_API_TOKEN)"),
        ("{{ inputs.who }}", "{{ inputs.who }}: input 'who' is not set (has: cfg, n, name, none)"),
        ("x {{ tasks.b.outputs.x }}", "{{ tasks.b.outputs.x }}: task 'b' has no outputs (it has not succeeded)"),
        ("{{ tasks.a.outputs.rows.5 }}", "{{ tasks.a.outputs.rows.5 }}: output 'rows' of task 'a' has no item 5 (it has 2 item(s))"),
        ("{{ tasks.a.outputs.rows.x }}", "has no item x"),
        ("{{ tasks.a.outputs.count.x }}", "output 'count' of task 'a' is a number, it has no 'x'"),
        ("{{ tasks.a.outputs.rows.0.nope }}", "has no key 'nope' (has: id)"),
        ("{{ tasks.empty.outputs.x }}", "task 'empty' has no output 'x' (it has none)"),
        ("{{ inputs.name", "'{{' without a closing '}}'"),
        ("a {{ nope.x }}", "unknown root 'nope'"),
    ],
)
def test_render_errors(value: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        do_render(value)
    assert message in str(info.value)


def test_raw_blocks_keep_braces_literal_and_are_not_checked() -> None:
    from kestra_trio.model.templates import render, scan_string

    text = "docker inspect --format '{% raw %}{{.Id}} {{ json .Config }}{% endraw %}' {{ inputs.name }}"
    assert render(text, inputs={"name": "web"}, task_outputs={}, secret=lambda _: None) == (
        "docker inspect --format '{{.Id}} {{ json .Config }}' web"
    )
    assert [ref.raw for ref in scan_string(text)] == ["{{ inputs.name }}"]
    (problem,) = scan_string("{{.Id}}")
    assert "{% raw %}" in str(problem)
