"""The {{ ... }} mini-language: finding references, rendering, and its error messages."""

from __future__ import annotations

from typing import Any

import pytest

from kestra_trio.errors import KestraTrioError
from kestra_trio.model.templates import (
    Reference,
    TemplateError,
    UnsupportedTemplate,
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
        ("  {{ inputs.cfg }}  ", '  {"tags": ["x", "y"]}  '),  # text around it: interpolation
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


# -- the whole-value rule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ inputs.n }}", 3),
        ("{{inputs.n}}", 3),  # spaces inside the braces do not matter
        ("{{   inputs.cfg\n }}", {"tags": ["x", "y"]}),
        (" {{ inputs.n }}", " 3"),  # anything around it makes it text, every character kept
        ("{{ inputs.n }} ", "3 "),
        ("  {{ inputs.name }}  ", "  world  "),
        ("{{ inputs.name }}\n", "world\n"),  # a YAML `|` block scalar ends with a newline
        ("{{ inputs.n }}\n", "3\n"),
        ("{{ inputs.cfg.tags }}\n", '["x", "y"]\n'),
        ("\t{{ inputs.none }}", "\tnull"),
        ("{{ inputs.n }}{{ inputs.n }}", "33"),
        ("{% raw %}{% endraw %}{{ inputs.n }}", "3"),  # an (empty) raw block is text too
    ],
)
def test_only_an_exact_template_keeps_the_json_type(value: str, expected: Any) -> None:
    assert do_render(value) == expected


# -- whole-value templates into string properties --------------------------------------------

LOG_SCHEMA = {
    "type": "object",
    "properties": {"message": {"type": "string"}, "level": {"type": "string"}},
    "additionalProperties": False,
}


def render_with(schema: Any, value: Any) -> Any:
    outputs = {**OUTPUTS, "b": {"ok": True, "ratio": 2.5, "nothing": None, "big": 1e20}}
    return render(value, inputs=INPUTS, task_outputs=outputs, secret=SECRETS.get, schema=schema)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ tasks.a.outputs.count }}", "2"),
        ("{{ inputs.n }}", "3"),
        ("{{ tasks.b.outputs.ratio }}", "2.5"),
        ("{{ tasks.b.outputs.big }}", "1e+20"),
        ("{{ tasks.b.outputs.ok }}", "true"),
        ("{{ tasks.b.outputs.nothing }}", "null"),  # the text interpolation would write
        ("{{ inputs.name }}", "world"),
        ("{{ tasks.a.outputs.rows }}", [{"id": 7}, {"id": 8}]),  # lists are never converted
        ("{{ inputs.cfg }}", {"tags": ["x", "y"]}),  # nor mappings
    ],
)
def test_scalar_into_a_string_property_becomes_its_json_text(template: str, expected: Any) -> None:
    assert render_with(LOG_SCHEMA, {"message": template}) == {"message": expected}


def test_conversion_follows_the_schema_of_that_exact_place() -> None:
    schema = {
        "type": "object",
        "properties": {
            "count": {"type": "integer"},
            "either": {"type": ["string", "integer"]},
            "text_or_null": {"type": ["string", "null"]},
            "ratio": {"type": ["string", "integer"]},
            "nested": {"type": "object", "properties": {"label": {"type": "string"}}},
            "env": {"type": "object", "additionalProperties": {"type": "string"}},
            "mixed_env": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
            "argv": {"type": "array", "items": {"type": "string"}},
            "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]},
            "by_pattern": {"type": "object", "patternProperties": {"^S_": {"type": "string"}}},
            "untyped": {},
        },
    }
    value = {
        "count": "{{ inputs.n }}",
        "either": "{{ inputs.n }}",
        "text_or_null": "{{ inputs.none }}",
        "ratio": "{{ tasks.b.outputs.ratio }}",
        "nested": {"label": "{{ inputs.n }}"},
        "env": {"N": "{{ inputs.n }}", "OK": "{{ tasks.b.outputs.ok }}"},
        "mixed_env": {"N": "{{ inputs.n }}"},
        "argv": ["echo", "{{ inputs.n }}", "{{ inputs.cfg.tags }}"],
        "pair": ["{{ inputs.n }}", "{{ inputs.n }}"],
        "by_pattern": {"S_N": "{{ inputs.n }}", "OTHER": "{{ inputs.n }}"},
        "untyped": "{{ inputs.n }}",
        "unknown": "{{ inputs.n }}",
    }
    assert render_with(schema, value) == {
        "count": 3,
        "either": 3,
        "text_or_null": None,
        "ratio": "2.5",  # 2.5 is not an integer, so the string it may also be
        "nested": {"label": "3"},
        "env": {"N": "3", "OK": "true"},
        "mixed_env": {"N": 3},
        "argv": ["echo", "3", ["x", "y"]],
        "pair": [3, "3"],
        "by_pattern": {"S_N": "3", "OTHER": 3},
        "untyped": 3,
        "unknown": 3,
    }


def test_literal_values_are_never_converted() -> None:
    # only templates are converted: a literal 2 is the author's value (validate reports it)
    assert render_with(LOG_SCHEMA, {"message": 2, "level": True}) == {"message": 2, "level": True}


# -- unsupported Jinja syntax ----------------------------------------------------------------

TAG_IF = "unsupported template tag {% if %}: only {{ expression }} and {% raw %}...{% endraw %} are supported"
COMMENT = (
    "unsupported template comment {# ... #}: remove it (a YAML comment starts with #), "
    "or for literal text wrap it in {% raw %}...{% endraw %}"
)


@pytest.mark.parametrize(
    ("text", "messages"),
    [
        ("{% if inputs.x %}yes{% endif %}", [TAG_IF]),  # one problem, not one per tag
        ("{%- if x -%}a{% else %}b{% endif %}", [TAG_IF]),
        ("{% for x in y %}{{ inputs.a }}{% endfor %}", [TAG_IF.replace("if", "for", 1), "inputs.a"]),
        ("{% set x = 1 %}", [TAG_IF.replace("if", "set", 1)]),
        ("{% endif %}", [TAG_IF.replace("if", "endif", 1)]),
        ("{% %}", [TAG_IF.replace("{% if %}", "{% %}")]),
        ("a {# note #} {{ inputs.a }}", [COMMENT, "inputs.a"]),
        ("{# multi\nline #}", [COMMENT]),
        ("{% raw %}{{ .Id }} {{ inputs.a }}", ["{% raw %} without {% endraw %}"]),
        ("{{ inputs.a }} {% endraw %}", ["inputs.a", "{% endraw %} without {% raw %}"]),
        ("{% raw %}a{% endraw %}{% endraw %}", ["{% endraw %} without {% raw %}"]),
        (
            "{% if x and {{ inputs.a }}",
            ["'{%' without a closing '%}' in '{% if x and {{ inputs.a }}' (for a literal '{%', wrap it in {% raw %}...{% endraw %})", "inputs.a"],
        ),
    ],
)
def test_unsupported_jinja_syntax_is_reported(text: str, messages: list[str]) -> None:
    found = [item.raw[3:-3] if isinstance(item, Reference) else str(item) for item in scan_string(text)]
    assert found == messages
    with pytest.raises(TemplateError):
        do_render(text)


def test_unsupported_syntax_has_its_own_error_class() -> None:
    kinds = [type(item) for item in scan_string("{% if x %}{# c #}{% raw %}")]
    assert kinds == [UnsupportedTemplate, UnsupportedTemplate, TemplateError]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a literal `{%`, `{#`, `{{` and `%}` can be written inside a raw block
        ("{% raw %}{% if x %}{# c #}{{ y }}%}{% endraw %} {{ inputs.name }}", "{% if x %}{# c #}{{ y }}%} world"),
        ("{%- raw -%}{{.Id}}{%- endraw -%}", "{{.Id}}"),
        ("{% raw %}a{% endraw %}-{% raw %}b{% endraw %}", "a-b"),
        ("{%raw%}{%  endraw  %}", ""),
        # `{#` without `#}` is plain text: shell's ${#var} needs no escaping
        ("n=${#HOME}; echo {{ inputs.n }}", "n=${#HOME}; echo 3"),
        ("echo ${#a} ${#b[@]}", "echo ${#a} ${#b[@]}"),
        ("{%}", None),  # `{%` not closed by a later `%}`: an error, as in Jinja
        ("100%} done", "100%} done"),  # a lone `%}` or `#}` is text
        ("#} and }}", "#} and }}"),
    ],
)
def test_literal_braces(text: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(TemplateError, match="without a closing '%}'"):
            do_render(text)
    else:
        assert do_render(text) == expected
        assert all(isinstance(item, Reference) for item in scan_string(text))


def test_an_unclosed_opener_is_reported_once_per_string() -> None:
    assert [str(i) for i in scan_string("printf '{%s} {%d}'; {{ a {{ b")] == [
        "'{%' without a closing '%}' in \"{%s} {%d}'; {{ a {{ b\" (for a literal '{%', wrap it in {% raw %}...{% endraw %})",
        "'{{' without a closing '}}' in '{{ a {{ b'",
    ]


@pytest.mark.parametrize(
    "text",
    ["{{ " * 200_000, "{% a " * 200_000, "${#x} " * 200_000, "{# " * 200_000 + "#}"],
    ids=["expressions", "tags", "dollar-braces", "comments"],
)
def test_hostile_strings_scan(text: str) -> None:
    """At most one finding, not one per opener; the time it takes is scripts/bench_model.py's."""
    assert len(scan_string(text)) <= 1
