"""Templates: Jinja2 in a JSON-only sandbox — typing, references, messages, limits, secrets."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kestra_trio.errors import KestraTrioError
from kestra_trio.model import template_jinja as J
from kestra_trio.model import template_render as R
from kestra_trio.model.template_sandbox import FILTERS, TemplateLimits
from kestra_trio.model.templates import (
    Reference,
    TemplateContext,
    TemplateError,
    TemplateLimitExceeded,
    UnsupportedTemplate,
    analyze,
    find_references,
    has_template,
    render,
    scan_string,
    secret_names,
)

OUTPUTS = {"a": {"count": 2, "rows": [{"id": 7}, {"id": 8}], "items": ["x"]}, "empty": {}}
INPUTS = {"name": "world", "n": 3, "cfg": {"tags": ["x", "y"], "0": "zero"}, "none": None}
SECRETS = {"API_KEY": "s3cr3t"}
CONTEXT = TemplateContext(
    inputs=INPUTS, outputs=OUTPUTS, secret=SECRETS.get,
    execution={"id": "ex1", "started_at": "2026-11-21T10:15:30.000Z"},
    workflow={"id": "wf", "namespace": "team", "revision": 3}, task={"id": "t", "attempt": 2},
    trigger={"type": "cron", "scheduled_at": "2026-11-21T10:00:00Z"}, variables={"env": "prod", "regions": ["eu", "us"]},
)  # fmt: skip


def do_render(value: Any, **context: Any) -> Any:
    ctx = TemplateContext(**{**{f: getattr(CONTEXT, f) for f in CONTEXT.__dataclass_fields__}, **context})
    return render(value, ctx)


# -- references --------------------------------------------------------------------------------


def test_find_references_walks_nested_values_in_order() -> None:
    value = {
        "a": "{{ inputs.name }} and {{tasks.a.outputs.rows.0.id}}",
        "b": [1, {"c": "{{ secrets.API_KEY }}"}],
        "d": None,
    }
    assert find_references(value) == [
        Reference("inputs", ("name",)),
        Reference("tasks", ("a", "outputs", "rows", 0, "id")),
        Reference("secrets", ("API_KEY",)),
    ]
    ref = find_references("{{ tasks.a.outputs.rows.0 }}")[0]
    assert ref.name == "a" and ref.output_path == ("rows", 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # filters, tests, conditions and loops: every path under a root is found
        ("{{ tasks.a.outputs.rows | length > inputs.n }}", [("tasks", ("a", "outputs", "rows")), ("inputs", ("n",))]),
        ("{% if inputs.n is even %}{{ vars.env }}{% endif %}", [("inputs", ("n",)), ("vars", ("env",))]),
        ("{% for r in tasks.a.outputs.rows %}{{ r.id }}{{ loop.index }}{% endfor %}", [("tasks", ("a", "outputs", "rows"))]),
        ("{% set x = inputs.cfg %}{{ x.tags }}", [("inputs", ("cfg",))]),
        ("{{ tasks['my-task'].outputs[\"a b\"] }}", [("tasks", ("my-task", "outputs", "a b"))]),
        ("{{ (tasks.a.outputs.rows | first).id }}", [("tasks", ("a", "outputs", "rows"))]),
        ("{{ item.name ~ item_index }}", [("item", ("name",)), ("item_index", ())]),
    ],
)
def test_references_are_found_through_jinja_syntax(text: str, expected: list[tuple[str, tuple[Any, ...]]]) -> None:
    assert [(ref.root, ref.parts) for ref in find_references(text)] == expected


def test_reference_flags() -> None:
    guarded, exact, computed = find_references(
        "{{ tasks.a.outputs.x | default('none') }} {{ inputs.n }} {{ inputs.cfg[inputs.name] }}"
    )[:3]
    assert guarded.guarded and not guarded.exact
    assert exact.exact and not exact.guarded
    assert computed.dynamic and computed.parts == ("cfg",)
    assert find_references("{% if tasks.a.outputs.x is defined %}y{% endif %}")[0].guarded


def test_secret_names_are_what_the_engine_grants() -> None:
    assert secret_names({"env": {"TOKEN": "{{ secrets.API_KEY }}"}, "cmd": "x {{ secrets.OTHER }} {{ inputs.n }}"}) == {
        "API_KEY", "OTHER",
    }  # fmt: skip
    assert secret_names(["no templates", 1]) == set()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ secrets.API_KEY | upper }}", "a secret can only be written alone as {{ secrets.API_KEY }}"),
        ("{% if secrets.API_KEY == 'x' %}y{% endif %}", "a secret can only be written alone"),
        ("{% for c in secrets.API_KEY %}{{ c }}{% endfor %}", "a secret can only be written alone"),
        ("{{ secrets[inputs.name] }}", "write a secret as secrets.NAME"),
        ("{{ secrets }}", "name what to use"),
        ("{{ tasks[inputs.name].outputs }}", "write the task id out"),
        ("{{ tasks.a }}", "only tasks.<id>.outputs... can be used"),
        ("{{ tasks.a.stdout }}", "only tasks.<id>.outputs... can be used"),
        ("{{ inputs }}", "name what to use, e.g. {{ inputs.name }}"),
        ("{{ item_index.x }}", "item_index is a number"),
        ("{{ tasks.my-task.outputs.x }}", "'-' is a minus sign in templates; write a key with '-' in brackets: tasks['my-task']"),
        ("{{ inputs.my-input }}", "write a key with '-' in brackets: inputs['my-input']"),
        ("{{ inputs.name.upper() }}", ".upper(): function and method calls are not supported"),
        ("{{ range(10) }}", "range(): function and method calls are not supported"),
        ("{{ inputs.n | frobnicate }}", "unknown filter 'frobnicate'"),
        ("{{ inputs.n is prime }}", "unknown test 'prime'"),
        ("{% include 'x' %}", "unsupported template tag {% include %}"),
        ("{% macro m() %}{% endmacro %}", "unsupported template tag {% macro %}"),
        ("{% set x %}a{% endset %}", "unsupported template tag {% set ... endset %}"),
        ("{% filter upper %}a{% endfilter %}", "unsupported template tag {% filter %}"),
        ("{% for x in inputs.cfg recursive %}{% endfor %}", "recursive loops are not supported"),
        ("{% set inputs = 1 %}", "cannot assign to 'inputs'"),
        ("{{ inputs.n", "'{{' without a closing '}}' in '{{ inputs.n'"),
        ("{% raw %}{{ x }}", "{% raw %} without {% endraw %}"),
        ("{{ inputs.n }}{% endraw %}", "{% endraw %} without {% raw %}"),
        ("{% if inputs.n %}yes", "{% if %} without {% endif %}"),
        ("{% endif %}", "{% endif %} without its opening tag"),
        ("printf '{%s}'", "'{%' without a closing '%}'"),
        ("{{.Id}}", "unexpected '.' (for a literal '{{' or '{%', wrap it in {% raw %}...{% endraw %})"),
        ("{# c #} {#", "'{#' without a closing '#}' after a {# comment #}"),
    ],
)
def test_problems_say_what_to_write(text: str, message: str) -> None:
    problems = [item for item in scan_string(text) if isinstance(item, TemplateError)]
    assert any(message in str(problem) for problem in problems), problems
    with pytest.raises(TemplateError):
        do_render(text)


def test_unsupported_syntax_has_its_own_error_class() -> None:
    assert isinstance(scan_string("{% include 'x' %}")[0], UnsupportedTemplate)
    assert issubclass(TemplateError, KestraTrioError)


def test_has_template() -> None:
    assert has_template({"a": ["x", "{{ inputs.n }}"]}) and has_template("{% if x %}{% endif %}")
    assert not has_template({"a": ["x", 1, None]})


# -- rendering ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ inputs.n }}", 3),  # a whole-string template keeps the JSON type
        ("  {{ inputs.cfg }}  ", '  {"tags": ["x", "y"], "0": "zero"}  '),  # text around it: JSON text
        ("{{ tasks.a.outputs.rows }}", [{"id": 7}, {"id": 8}]),
        ("{{ tasks.a.outputs }}", OUTPUTS["a"]),
        ("{{ tasks.a.outputs.items }}", ["x"]),  # a key called `items` is the key, not dict.items
        ("{{ inputs.none }}", None),
        ("id={{ tasks.a.outputs.rows.1.id }}", "id=8"),
        ("id={{ tasks.a.outputs.rows[1]['id'] }}", "id=8"),
        ("{{ inputs.cfg.0 }}", "zero"),  # a number finds a text key of a mapping
        ("hello {{inputs.name}}, n={{ inputs.n }}", "hello world, n=3"),
        ("none: {{ inputs.none }}", "none: null"),
        ("{{ secrets.API_KEY }}", "s3cr3t"),
        ('json {"a": {"b": 1}}', 'json {"a": {"b": 1}}'),  # `}}` alone is not a template
        ({"k": ["{{ inputs.cfg.tags.0 }}", 5, True]}, {"k": ["x", 5, True]}),
        # the execution context
        ("{{ execution.id }}/{{ workflow.namespace }}.{{ workflow.id }}@{{ workflow.revision }}", "ex1/team.wf@3"),
        ("{{ task.id }}#{{ task.attempt }} {{ trigger.type }}", "t#2 cron"),
        ("{{ vars.regions }}", ["eu", "us"]),
        # Jinja: filters, operators, conditions, loops
        ("{{ inputs.name | upper }}", "WORLD"),
        ("{{ inputs.none | default('n/a') }}", None),  # default() only replaces a missing value
        ("{{ tasks.a.outputs.nope | default('n/a') }}", "n/a"),
        ("{{ tasks.nope.outputs.x.y | default(0) }}", 0),  # a missing path stays missing down to default
        ("{{ inputs.cfg | json }}", '{"tags": ["x", "y"], "0": "zero"}'),
        ("{{ tasks.a.outputs.rows | length }}", 2),
        ("{{ vars.regions | join(', ') }}", "eu, us"),
        ("{{ tasks.a.outputs.rows | map(attribute='id') | list }}", [7, 8]),
        ("{{ tasks.a.outputs.rows | map(attribute='id') | join('+') }}", "7+8"),
        ("{{ tasks.a.outputs.rows | sum(attribute='id') }}", 15),
        ("{{ inputs.name | replace('o', '0') }}", "w0rld"),
        ("{{ execution.started_at | date('%Y-%m-%d %H:%M') }}", "2026-11-21 10:15"),
        ("{{ 1700000000000 | date('%H:%M', tz='Europe/Paris') }}", "23:13"),
        ("{{ execution.started_at | date }}", "2026-11-21T10:15:30+00:00"),
        ("{{ inputs.n * 2 + 1 }}", 7),
        ("{{ inputs.n > 2 and vars.env == 'prod' }}", True),
        ("{{ 'big' if inputs.n > 2 else 'small' }}", "big"),
        ("{{ inputs.name ~ '!' }}", "world!"),
        ("{% if inputs.n is odd %}odd{% else %}even{% endif %}", "odd"),
        ("{% for r in tasks.a.outputs.rows %}{{ loop.index }}:{{ r.id }} {% endfor %}", "1:7 2:8 "),
        ("{% set total = inputs.n * 2 %}{{ total }}", "6"),  # not a single {{ }}: text
        ("{{ '{\"a\": [1]}' | fromjson }}", {"a": [1]}),
        ("{{ 'héllo' | b64encode | b64decode }}", "héllo"),
        ("{{ inputs.cfg | string }}", '{"tags": ["x", "y"], "0": "zero"}'),  # JSON, never Python repr
        ("{# a comment #}{{ inputs.n }}", 3),
        ("n=${#HOME} {{ inputs.n }}", "n=${#HOME} 3"),  # `{#` with no `#}` is text: shell's ${#VAR}
        ("{% raw %}{{.Id}} {% if %}{% endraw %} {{ inputs.name }}", "{{.Id}} {% if %} world"),
        ("{%- raw -%}{{.Id}}{%- endraw -%}", "{{.Id}}"),
        ("100%} done #} and }}", "100%} done #} and }}"),
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
        ("{{ tasks.a.outputs.missing }}", "{{ tasks.a.outputs.missing }}: task 'a' has no output 'missing' (has: count, items, rows)"),
        ("{{ secrets.API_TOKEN }}", "{{ secrets.API_TOKEN }}: secret API_TOKEN is not set (set KESTRA_TRIO_SECRET_API_TOKEN)"),
        ("{{ inputs.who }}", "{{ inputs.who }}: input 'who' is not set (has: cfg, n, name, none)"),
        ("x {{ tasks.b.outputs.x }}", "{{ tasks.b.outputs.x }}: task 'b' has no outputs (it has not succeeded)"),
        ("{{ tasks.a.outputs.rows.5 }}", "{{ tasks.a.outputs.rows.5 }}: output 'rows' of task 'a' has no item 5 (it has 2 item(s))"),
        ("{{ tasks.a.outputs.count.x }}", "output 'count' of task 'a' is a number, it has no 'x'"),
        ("{{ tasks.a.outputs.rows.0.nope }}", "has no key 'nope' (has: id)"),
        ("{{ tasks.empty.outputs.x }}", "task 'empty' has no output 'x' (it has none)"),
        ("{{ inputs.name.upper }}", "input 'name' is a string, it has no 'upper' (use a filter, e.g. | upper)"),
        ("{{ inputs.name.__class__ }}", "is a string, it has no '__class__'"),
        ("{{ tasks.a.outputs.rows.count }}", "is a list, it has no 'count'"),
        ("{% if tasks.a.outputs.nope %}y{% endif %}", "task 'a' has no output 'nope'"),
        ("{{ item }}", "item is only set in a task with for_each"),
        ("{{ execution.error }}", "execution.error is only set in errors: and finally: tasks"),
        ("{{ inputs.name | date }}", "date: 'world' is not an ISO 8601 date-time or epoch milliseconds"),
        ("{{ 1 | date('%Y', tz='Mars/Base') }}", "date: unknown time zone 'Mars/Base'"),
        ("{{ inputs.n / 0 }}", "division by zero"),
        ("{{ inputs.n + 'x' }}", "cannot apply '+' to a number and a string"),
        ("{{ '%s' % inputs.n }}", "'%' formatting of text is not supported"),
    ],
)
def test_render_errors(value: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        do_render(value)
    assert message in str(info.value)


def test_loop_item_and_index_in_a_for_each_task() -> None:
    assert do_render("{{ item.name }}#{{ item_index }}", item={"name": "eu"}, item_index=4) == "eu#4"
    assert do_render("{{ item }}", item=[1, 2], item_index=0) == [1, 2]


# -- whole values and text -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ inputs.n }}", 3),
        ("{{inputs.n}}", 3),  # spaces inside the braces do not matter
        ("{{   inputs.cfg.tags\n }}", ["x", "y"]),
        ("{{ inputs.n + 1 }}", 4),  # an expression is a whole value too
        ("{{ vars.regions | map('upper') }}", ["EU", "US"]),  # a lazy filter result becomes a list
        (" {{ inputs.n }}", " 3"),  # anything around it makes it text, every character kept
        ("{{ inputs.n }} ", "3 "),
        ("{{ inputs.name }}\n", "world\n"),  # a YAML `|` block scalar ends with a newline
        ("{{ inputs.cfg.tags }}\n", '["x", "y"]\n'),
        ("\t{{ inputs.none }}", "\tnull"),
        ("{{ inputs.n }}{{ inputs.n }}", "33"),
        ("{% raw %}{% endraw %}{{ inputs.n }}", 3),  # an (empty) raw block adds no text
        ("{{ inputs.n > 1 }}\n", "true\n"),
    ],
)
def test_only_an_exact_template_keeps_the_json_type(value: str, expected: Any) -> None:
    assert do_render(value) == expected


LOG_SCHEMA = {
    "type": "object",
    "properties": {"message": {"type": "string"}, "level": {"type": "string"}},
    "additionalProperties": False,
}


def render_with(schema: Any, value: Any) -> Any:
    outputs = {**OUTPUTS, "b": {"ok": True, "ratio": 2.5, "nothing": None, "big": 1e20}}
    return render(value, TemplateContext(inputs=INPUTS, outputs=outputs, secret=SECRETS.get), schema=schema)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ tasks.a.outputs.count }}", "2"),
        ("{{ inputs.n }}", "3"),
        ("{{ inputs.n * 2 }}", "6"),
        ("{{ tasks.b.outputs.ratio }}", "2.5"),
        ("{{ tasks.b.outputs.big }}", "1e+20"),
        ("{{ tasks.b.outputs.ok }}", "true"),
        ("{{ tasks.b.outputs.nothing }}", "null"),  # the text interpolation would write
        ("{{ inputs.name }}", "world"),
        ("{{ tasks.a.outputs.rows }}", [{"id": 7}, {"id": 8}]),  # lists are never converted
        ("{{ inputs.cfg }}", INPUTS["cfg"]),  # nor mappings
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
    assert render_with(LOG_SCHEMA, {"message": 2, "level": True}) == {"message": 2, "level": True}


# -- a template can never run code or eat the engine ----------------------------------------------

SMALL = TemplateLimits(max_text=10_000, max_iterations=1_000, max_items=1_000, max_int_bits=256, max_seconds=5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ 'x' * 10**9 }}", "'*' would be 1,000,000,000 characters"),
        ("{{ 10 ** 10 ** 10 }}", "a number would have more than 256 bits"),
        ("{{ (2 ** 200) * (2 ** 200) }}", "more than 256 bits"),
        ("{{ [1] * 10**9 }}", "a list would have 1,000,000,000 items"),
        ("{{ inputs.name | replace('', 'y' * 5000) }}", "replace would be"),
        ("{{ vars.big | join('-' * 9000) }}", "join would be"),
        ("{{ 'x' | indent(100000) }}", "indent would be"),
        ("{{ vars.text ~ vars.text }}", "'~' would be"),
        ("{{ vars.text + vars.text }}", "'+' would be"),
        ("{{ vars.text }}{{ vars.text }}", "rendered text would be longer than 10,000 characters"),
        ("{% for a in vars.big %}{% for b in vars.big %}{% endfor %}{% endfor %}", "loops ran more than 1,000 times"),
        ("{{ vars.long | list }}", "a list would have 6,000 items"),
        ("{{ [vars.text, vars.text, vars.text, vars.text, vars.text, vars.text, vars.text, vars.text] }}", "rendered value would be larger"),
    ],
)
def test_hostile_templates_stop_at_a_limit(text: str, message: str) -> None:
    context = TemplateContext(
        inputs=INPUTS, variables={"text": "t" * 6_000, "long": "l" * 6_000, "big": list(range(100))},
    )
    # (refused before the work, not after: the time it takes is scripts/bench_model.py's business)
    with pytest.raises(TemplateLimitExceeded, match=message.replace("(", r"\(").replace("*", r"\*").replace("+", r"\+")):
        render(text, context, limits=SMALL)


def test_a_render_that_runs_too_long_stops() -> None:
    slow = TemplateLimits(max_iterations=10**9, max_seconds=0.0)
    with pytest.raises(TemplateLimitExceeded, match="took longer than 0s"):
        render("{% for a in vars.big %}{{ a }}{% endfor %}", TemplateContext(variables={"big": list(range(10))}), limits=slow)


def test_no_python_object_is_reachable() -> None:
    # attribute names of Python internals are just missing keys of JSON values
    for text in ("{{ inputs.__class__.__mro__ }}", "{{ inputs.cfg.tags.__len__ }}", "{{ loop }}", "{{ lipsum }}"):
        with pytest.raises(TemplateError):
            do_render(text)
    assert "attr" not in FILTERS and "format" not in FILTERS and "center" not in FILTERS


@pytest.mark.parametrize(
    "text",
    ["{{ " * 200_000, "{% a " * 200_000, "${#x} " * 200_000, "{# " * 200_000 + "#}"],
    ids=["expressions", "tags", "dollar-braces", "comments"],
)
def test_hostile_strings_scan(text: str) -> None:
    """At most one finding, not one per opener; the time it takes is scripts/bench_model.py's."""
    assert len(scan_string(text)) <= 1


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    problems = scan_string("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")
    assert problems and isinstance(problems[0], TemplateError)


# -- the plain-path scanner agrees with Jinja ------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "items", "keys", "if", "not", "true", "x_1", "0", "rows"])
STEP = st.one_of(
    NAMES.filter(lambda n: not n[0].isdigit()).map(lambda n: f".{n}"),
    st.integers(0, 3).map(lambda i: f".{i}"),
    st.integers(0, 3).map(lambda i: f"[{i}]"),
    NAMES.map(lambda n: f"['{n}']"),
)
PATH = st.tuples(st.sampled_from(["inputs", "vars", "trigger", "item"]), st.lists(STEP, max_size=4)).map(
    lambda t: t[0] + "".join(t[1])
)
TEXT = st.text(alphabet="ab }%#\n{", max_size=6).filter(lambda t: "{{" not in t and "{%" not in t and "{#" not in t and not t.endswith("{"))
TEMPLATE = st.lists(st.tuples(TEXT, st.sampled_from(["{{ ", "{{", "{{  "]), PATH), min_size=1, max_size=3).map(
    lambda parts: "".join(f"{text}{open_}{path} }}}}" for text, open_, path in parts)
)
LEAF = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3)
DATA = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(template=TEMPLATE, inputs=st.dictionaries(NAMES, DATA, max_size=4), variables=DATA, trailing=TEXT)
def test_plain_paths_render_as_jinja_renders_them(template: str, inputs: dict[str, Any], variables: Any, trailing: str) -> None:
    text = template + trailing
    fast = analyze(text)
    assert fast.kind == "simple"
    jinja = J.analyze_jinja(text)
    assert [(r.root, r.parts) for r in fast.references] == [(r.root, r.parts) for r in jinja.references]
    assert fast.whole == jinja.whole
    context = TemplateContext(inputs=inputs, variables={"v": variables}, trigger={"body": variables}, item=variables, item_index=0)
    variables_of = R._variables(context, set())

    def outcome(analysis: Any) -> Any:
        try:
            if analysis.kind == "simple":
                return ("ok", R._render_simple(text, analysis, variables_of, None))
            return ("ok", R._render_jinja(text, analysis, variables_of, None))
        except TemplateError:
            return ("error",)

    assert outcome(fast) == outcome(jinja)


def test_plain_paths_skip_jinja() -> None:
    # validation of a 6,000-task workflow stays fast because most strings never reach
    # Jinja's parser (scripts/bench_validate.py measures it)
    assert analyze("./step.sh {{ tasks.t1.outputs.rows }} --day {{ inputs['day'] }}").kind == "simple"
    assert analyze("{{ inputs.day | upper }}").kind == "jinja"
