"""Templates in workflow values: Jinja2 expressions in a JSON-only sandbox.

`{{ inputs.day }}`, `{{ tasks.extract.outputs.rows | length }}`, `{% if %}`, `{% for %}`,
filters and `{% raw %}` are Jinja2 (`ImmutableSandboxedEnvironment`, see
`template_sandbox`), so the language is the one Kestra's Pebble and Airflow users know. What
we add on top, and why Jinja alone would not do:

* **A whole value keeps its JSON type.** A string that is exactly one `{{ expr }}` becomes
  the expression's value (a list stays a list); any other string is text, with non-strings
  written as JSON. `render(..., schema=)` turns a scalar into its JSON text where the
  action's input schema wants a string.
* **Every reference is known before anything runs.** `analyze()` walks Jinja's AST and
  returns each `root.key.key` path (`Reference`), so validation checks every one with
  file:line:column and did-you-mean, and the engine knows which secrets a task uses.
* **Secrets stay maskable.** A secret can only be written as `{{ secrets.NAME }}`: a filter
  or operator on it would produce text the masker cannot recognise (`| reverse`), and a
  comparison would leak it bit by bit.
* **Plain paths skip Jinja.** Most values are text with `{{ a.b.c }}` paths; those are
  analysed and rendered by a small scanner that uses the sandbox's own lookups, so the
  result is the same (a property test compares the two) at a fraction of the cost: a
  6,000-task templated workflow validates in well under a second.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from jinja2 import TemplateSyntaxError, nodes
from jinja2 import TemplateError as JinjaError
from jinja2.runtime import Undefined

from kestra_trio.model.template_sandbox import (
    DEFAULT_LIMITS,
    FILTERS,
    TESTS,
    TemplateError,
    TemplateLimitExceeded,
    TemplateLimits,
    current_limits,
    describe,
    environment,
    limited,
    missing_message,
    plain,
    route_through_limits,
)

__all__ = [
    "NO_ITEM",
    "ROOTS",
    "Analysis",
    "Reference",
    "TemplateContext",
    "TemplateError",
    "TemplateLimitExceeded",
    "TemplateLimits",
    "UnsupportedTemplate",
    "analyze",
    "find_references",
    "has_template",
    "has_template_syntax",
    "render",
    "scan_string",
    "secret_names",
    "walk_strings",
]

#: every name a template may start with; validation decides which are legal where
ROOTS = ("inputs", "vars", "tasks", "secrets", "execution", "workflow", "task", "trigger", "item", "item_index")
#: roots that must be followed by a name (`{{ inputs }}` alone is a mistake)
_NEED_A_NAME = {"inputs": "name", "vars": "NAME", "tasks": "ID.outputs.NAME", "secrets": "NAME",
                "execution": "id", "workflow": "id", "task": "id"}  # fmt: skip
_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SUPPORTED = (
    "templates support {{ expressions }}, filters, {% if %}, {% for %}, {% set x = ... %}, {% with %} "
    "and {% raw %}...{% endraw %}"
)
_LITERAL_HINT = "for a literal '{{' or '{%', wrap it in {% raw %}...{% endraw %}"


class UnsupportedTemplate(TemplateError):
    """Jinja syntax templates do not offer here: includes, macros, calls, block capture ..."""


@dataclass(frozen=True, slots=True)
class Reference:
    """One `root.key.key` path a template reads, as far as its keys are written out.

    `guarded`: written under
    `| default(...)` or `is defined`, so it may be missing. `exact`: written alone in a
    `{{ }}` (what a secret must be). `dynamic`: the path goes on with a computed key
    (`inputs[name]`), which `parts` stops before.
    """

    root: str
    parts: tuple[str | int, ...]
    guarded: bool = False
    exact: bool = True
    dynamic: bool = False

    @property
    def raw(self) -> str:
        """The path as template text, for messages: `{{ tasks.a.outputs.rows.0 }}`."""
        return f"{{{{ {_path_text(self.root, self.parts)} }}}}"

    @property
    def name(self) -> str | int | None:
        """The input, variable, secret or task this path starts with."""
        return self.parts[0] if self.parts else None

    @property
    def output_path(self) -> tuple[str | int, ...]:
        """For `tasks.ID.outputs.a.b`: `("a", "b")`; empty for other roots."""
        return self.parts[2:] if self.root == "tasks" else ()


def _path_text(root: str, parts: tuple[str | int, ...]) -> str:
    text = root
    for part in parts:
        if isinstance(part, int) and part >= 0:
            text += f".{part}"
        elif isinstance(part, str) and _IDENTIFIER.fullmatch(part):
            text += f".{part}"
        else:
            text += f"[{part!r}]"
    return text


def _reference(root: str, parts: tuple[str | int, ...], **flags: bool) -> Reference:
    return Reference(root, parts, **flags)


# -- analysis ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Analysis:
    """What one string holds: its references and problems, and how it renders."""

    kind: Literal["text", "simple", "jinja"]
    references: tuple[Reference, ...] = ()
    problems: tuple[TemplateError, ...] = ()
    #: the string is exactly one `{{ expr }}`: it renders to the value, not to text
    whole: bool = False
    #: simple kind: the text pieces and (root, steps) paths, alternating, text first
    pieces: tuple[Any, ...] = ()
    #: jinja kind: the parsed template
    tree: nodes.Template | None = field(default=None, compare=False)


def has_template_syntax(text: str) -> bool:
    """True when a string holds anything the template language reads: `{{`, `{%` or `{#`."""
    return "{{" in text or "{%" in text or "{#" in text


def analyze(text: str) -> Analysis:
    """Parse one string (cached): plain text, plain `{{ a.b }}` paths, or full Jinja."""
    if not has_template_syntax(text):
        return _PLAIN
    return _analyze(text)


_PLAIN = Analysis("text")


@functools.lru_cache(maxsize=4096)
def _analyze(text: str) -> Analysis:
    simple = _simple(text)
    if simple is not None:
        return simple
    return _analyze_jinja(text)


# A plain path: `root.key.0['other key']` — what most templates are.
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_INDEX = r"(?:0|[1-9][0-9]*)"
_STEP = rf"\.({_NAME})|\.({_INDEX})|\[({_INDEX})\]|\['([^'\\{{}}\n]*)'\]|\[\"([^\"\\{{}}\n]*)\"\]"
_STEPS = re.compile(_STEP)
_SIMPLE_PATH = re.compile(rf"\s*({_NAME})((?:{_STEP})*)\s*")
_DOTTED_PATH = re.compile(rf"\s*({_NAME}(?:\.{_NAME})*)\s*")


def _simple(text: str) -> Analysis | None:
    """The fast form: no tags or comments, each `{{ }}` a plain path under a known root.

    Linear: one forward scan with `str.find` (a regex looking for each `{{`'s `}}` would
    rescan the rest of the text at every `{{`)."""
    if "{%" in text or "{#" in text:
        return None
    pieces: list[Any] = []
    references = []
    position = 0
    while True:
        start = text.find("{{", position)
        if start < 0:
            break
        end = text.find("}}", start + 2)
        if end < 0 or text.find("{{", start + 2, end) >= 0:
            return None  # unclosed, or a `{{` inside: Jinja says what is wrong
        dotted = _DOTTED_PATH.fullmatch(text, start + 2, end)
        if dotted is not None:  # the common `a.b.c`: no need for the general step parser
            root, *names = dotted.group(1).split(".")
            if root not in ROOTS:
                return None
            pieces.extend((text[position:start], (root, tuple(("attr", name) for name in names))))
            references.append(Reference(root, tuple(names)))
            position = end + 2
            continue
        path = _SIMPLE_PATH.fullmatch(text, start + 2, end)
        if path is None or path.group(1) not in ROOTS:
            return None
        steps: list[tuple[str, str | int]] = []
        for step in _STEPS.finditer(path.group(2)):
            name, dot_index, index, single, double = step.groups()
            if name is not None:
                steps.append(("attr", name))
            elif dot_index is not None or index is not None:
                steps.append(("item", int(dot_index if dot_index is not None else index)))
            else:
                steps.append(("item", single if single is not None else double))
        root = path.group(1)
        pieces.extend((text[position:start], (root, tuple(steps))))
        references.append(_reference(root, tuple(key for _, key in steps)))
        position = end + 2
    if not references:
        return None
    rest = text[position:]
    pieces.append(rest)
    whole = len(references) == 1 and pieces[0] == "" and rest == ""
    problems = tuple(problem for ref in references if (problem := _path_problem(ref)) is not None)
    return Analysis("simple", tuple(references), problems, whole, tuple(pieces))


def _analyze_jinja(text: str) -> Analysis:
    env = environment(text)
    if "{#" in text and "#}" in text and "{#" in text[text.rfind("#}") + 2 :]:
        return Analysis("jinja", problems=(TemplateError(
            f"'{{#' without a closing '#}}' after a {{# comment #}} in {_snippet(text, text.rfind('{#'))!r} "
            "(for a literal '{#', wrap it in {% raw %}...{% endraw %})"
        ),))  # fmt: skip
    try:
        tree = env.parse(text)
    except TemplateSyntaxError as exc:
        return Analysis("jinja", problems=(_syntax_problem(text, exc),))
    except RecursionError:
        return Analysis("jinja", problems=(TemplateError("template is nested too deeply"),))
    walker = _Walker()
    walker.walk(tree)
    body = tree.body
    whole = len(body) == 1 and isinstance(body[0], nodes.Output) and len(body[0].nodes) == 1 and not isinstance(
        body[0].nodes[0], nodes.TemplateData
    )
    problems = walker.problems + [p for ref in walker.references if (p := _path_problem(ref)) is not None]
    return Analysis("jinja", tuple(walker.references), tuple(problems), whole, tree=tree)


def _snippet(text: str, start: int) -> str:
    return text[start : start + 30].splitlines()[0] if text[start:] else ""


def _syntax_problem(text: str, exc: TemplateSyntaxError) -> TemplateError:
    """Jinja's syntax errors, in our words where we have better ones."""
    message = exc.message or "syntax error"
    tag = re.match(r"Encountered unknown tag '([^']*)'", message)
    if tag:
        name = tag.group(1)
        if name == "endraw":
            return TemplateError("{% endraw %} without {% raw %}")
        if name.startswith("end") or name in ("else", "elif"):
            return TemplateError(f"{{% {name} %}} without its opening tag")
        if "%}" not in text:
            start = text.find("{%")
            return TemplateError(f"'{{%' without a closing '%}}' in {_snippet(text, start)!r} ({_LITERAL_HINT})")
        return UnsupportedTemplate(f"unsupported template tag {{% {name[:30]} %}}: {_SUPPORTED}")
    if message.startswith("Missing end of raw directive"):
        return TemplateError("{% raw %} without {% endraw %}")
    if message.startswith("Missing end of comment tag"):
        return TemplateError("'{#' without a closing '#}'")
    if "expected 'end of print statement'" in message and message.startswith("unexpected end of template"):
        start = text.rfind("{{")
        return TemplateError(f"'{{{{' without a closing '}}}}' in {_snippet(text, start)!r} ({_LITERAL_HINT})")
    if message.startswith("Unexpected end of template") and "looking for the following tags" in message:
        block = re.search(r"block that needs to be closed is '([^']*)'", message)
        name = block.group(1) if block else "block"
        return TemplateError(f"{{% {name} %}} without {{% end{name} %}}")
    if message == "tag name expected":
        return UnsupportedTemplate(f"empty template tag {{% %}}: {_SUPPORTED}")
    line = f" (line {exc.lineno})" if exc.lineno and exc.lineno > 1 else ""
    return TemplateError(f"in {_short(text)!r}{line}: {message.rstrip('.')} ({_LITERAL_HINT})")


_REFUSED_NODES: dict[type[nodes.Node], str] = {
    nodes.Extends: "extends", nodes.Block: "block", nodes.Include: "include", nodes.Import: "import",
    nodes.FromImport: "from ... import", nodes.Macro: "macro", nodes.CallBlock: "call",
    nodes.FilterBlock: "filter", nodes.AssignBlock: "set ... endset", nodes.ScopedEvalContextModifier: "autoescape",
    nodes.EvalContextModifier: "autoescape", nodes.NSRef: "set x.y", nodes.ExprStmt: "do",
}  # fmt: skip
_GUARDING_FILTERS = frozenset({"default", "d"})
_GUARDING_TESTS = frozenset({"defined", "undefined"})


class _Walker:
    """Collects references (root paths) and problems from a parsed template, iteratively."""

    def __init__(self) -> None:
        self.references: list[Reference] = []
        self.problems: list[TemplateError] = []
        self.locals: set[str] = set()

    def walk(self, tree: nodes.Template) -> None:
        for node in tree.find_all((nodes.Name, nodes.For)):
            if isinstance(node, nodes.Name) and node.ctx in ("store", "param"):
                if node.name in ROOTS:
                    self.problems.append(UnsupportedTemplate(f"cannot assign to {node.name!r}: it is a template root"))
                self.locals.add(node.name)
            elif isinstance(node, nodes.For):
                self.locals.add("loop")
                if node.recursive:
                    self.problems.append(UnsupportedTemplate(f"recursive loops are not supported: {_SUPPORTED}"))
        # (node, exact: alone in {{ }}, guarded: under default / is defined)
        stack: list[tuple[nodes.Node, bool, bool]] = [(tree, False, False)]
        while stack:
            node, exact, guarded = stack.pop()
            refused = _REFUSED_NODES.get(type(node))
            if refused is not None:
                self.problems.append(UnsupportedTemplate(f"unsupported template tag {{% {refused} %}}: {_SUPPORTED}"))
                continue
            if isinstance(node, nodes.Call):
                callee = node.node
                called = f".{callee.attr}()" if isinstance(callee, nodes.Getattr) else (
                    f"{callee.name}()" if isinstance(callee, nodes.Name) else "a call"
                )
                self.problems.append(UnsupportedTemplate(
                    f"{called}: function and method calls are not supported in templates; use filters (e.g. x | upper)"
                ))  # fmt: skip
                continue
            if isinstance(node, (nodes.Name, nodes.Getattr, nodes.Getitem)):
                stack.extend(self.chain(node, exact, guarded))
                continue
            if isinstance(node, nodes.Sub) and self.hyphenated(node):
                continue
            children: list[tuple[nodes.Node, bool, bool]] = []
            if isinstance(node, nodes.Output):
                children = [(child, True, False) for child in node.nodes]
            elif isinstance(node, (nodes.Filter, nodes.Test)):
                self.check_name(node)
                guards = _GUARDING_FILTERS if isinstance(node, nodes.Filter) else _GUARDING_TESTS
                children = [(child, False, node.name in guards and child is node.node) for child in node.iter_child_nodes()]
            else:
                children = [(child, False, False) for child in node.iter_child_nodes()]
            stack.extend(reversed(children))

    def check_name(self, node: nodes.Filter | nodes.Test) -> None:
        known = FILTERS if isinstance(node, nodes.Filter) else TESTS
        if node.name not in known:
            what = "filter" if isinstance(node, nodes.Filter) else "test"
            self.problems.append(UnsupportedTemplate(f"unknown {what} {node.name!r}{_suggest(node.name, known)}"))

    def chain(self, node: nodes.Node, exact: bool, guarded: bool) -> list[tuple[nodes.Node, bool, bool]]:
        """A `root.a[0]['b']` path: one Reference; computed keys are walked on their own."""
        keys: list[Any] = []  # outermost first
        later: list[tuple[nodes.Node, bool, bool]] = []
        base = node
        while isinstance(base, (nodes.Getattr, nodes.Getitem)):
            if isinstance(base, nodes.Getattr):
                keys.append(base.attr)
            elif isinstance(base.arg, nodes.Const) and isinstance(base.arg.value, (str, int)) and not isinstance(base.arg.value, bool):
                keys.append(base.arg.value)
            else:
                keys.append(_DYNAMIC)
                later.append((base.arg, False, False))
            base = base.node
        if not isinstance(base, nodes.Name):
            return [(base, False, False), *later]
        if base.name in self.locals:
            return later
        keys.reverse()
        dynamic = _DYNAMIC in keys
        parts = tuple(keys[: keys.index(_DYNAMIC)] if dynamic else keys)
        self.references.append(_reference(base.name, parts, guarded=guarded, exact=exact, dynamic=dynamic))
        return later

    def hyphenated(self, node: nodes.Sub) -> bool:
        """`tasks.my-task.outputs` reads as `tasks.my - task.outputs`: say how to write it."""
        left, right = node.left, node.right
        if not isinstance(left, nodes.Getattr) or not isinstance(_base(left), nodes.Name):
            return False
        right_base = _base(right)
        if not isinstance(right_base, nodes.Name) or right_base.name in self.locals:
            return False
        root = _base(left).name  # type: ignore[union-attr]
        incomplete = root == "tasks" and isinstance(left.node, nodes.Name)  # `tasks.my` cannot stand alone
        if root not in ROOTS or right_base.name in ROOTS and not incomplete:
            return False
        word = f"{left.attr}-{right_base.name}"
        before = _path_text(root, tuple(_keys(left)[:-1]))
        if root == "secrets":
            self.problems.append(TemplateError(
                f"{{{{ secrets.{word} }}}}: write a secret as secrets.NAME (letters, digits, underscore)"
            ))  # fmt: skip
            return True
        self.problems.append(TemplateError(
            f"{{{{ {before}.{word} }}}}: '-' is a minus sign in templates; write a key with '-' "
            f"in brackets: {before}[{word!r}]"
        ))  # fmt: skip
        return True


_DYNAMIC = object()


def _base(node: nodes.Node) -> nodes.Node:
    while isinstance(node, (nodes.Getattr, nodes.Getitem)):
        node = node.node
    return node


def _keys(node: nodes.Node) -> list[Any]:
    keys: list[Any] = []
    while isinstance(node, (nodes.Getattr, nodes.Getitem)):
        keys.append(node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", "?"))
        node = node.node
    return keys[::-1]


def _suggest(word: str, choices: Any) -> str:
    import difflib

    close = difflib.get_close_matches(word, [c for c in choices if not c.startswith("kt_")], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _path_problem(ref: Reference) -> TemplateError | None:
    """Rules on a path that hold wherever it is written."""
    if ref.root not in ROOTS:
        return None  # validation names unknown roots, with what is legal where it is written
    if ref.root in _NEED_A_NAME and not ref.parts and not ref.dynamic:
        return TemplateError(f"{ref.raw}: name what to use, e.g. {{{{ {ref.root}.{_NEED_A_NAME[ref.root]} }}}}")
    if ref.root == "secrets":
        if ref.dynamic or len(ref.parts) != 1 or not isinstance(ref.name, str) or not _SECRET_NAME.fullmatch(ref.name):
            return TemplateError(f"{ref.raw}: write a secret as secrets.NAME (letters, digits, underscore)")
        if not ref.exact:
            return UnsupportedTemplate(
                f"{ref.raw}: a secret can only be written alone as {{{{ secrets.{ref.name} }}}} — a filter, "
                "operator or test on it would make text that masking cannot hide"
            )
    if ref.root == "tasks":
        if ref.dynamic and not ref.parts:
            return TemplateError(f"{ref.raw}: write the task id out (tasks.ID or tasks['ID']), not a computed key")
        if len(ref.parts) < 2 or ref.parts[1] != "outputs":
            task = ref.parts[0] if ref.parts else "ID"
            return TemplateError(f"{ref.raw}: only tasks.<id>.outputs... can be used (e.g. tasks.{task}.outputs.NAME)")
    if ref.root == "item_index" and (ref.parts or ref.dynamic):
        return TemplateError(f"{ref.raw}: item_index is a number; it has no keys")
    return None


def scan_string(text: str) -> list[Reference | TemplateError]:
    """Each problem of a string's templates, then each reference (validation reports all)."""
    analysis = analyze(text)
    return [*analysis.problems, *analysis.references]


def walk_strings(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Yield `(path, string)` for every string in nested mappings and lists, keys excluded.

    Iterative, so a deeply nested value cannot hit the recursion limit.
    """
    stack: list[tuple[tuple[str | int, ...], Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, Mapping):
            stack.extend((where + (key,), child) for key, child in reversed(list(item.items())))
        elif isinstance(item, (list, tuple)):
            stack.extend((where + (index,), child) for index, child in reversed(list(enumerate(item))))


def has_template(value: Any) -> bool:
    """True when a string (or any string nested in lists/mappings) holds template syntax."""
    return any(has_template_syntax(text) for _, text in walk_strings(value))


def find_references(value: Any) -> list[Reference]:
    """Every reference in nested mappings, lists and strings, in document order.

    Raises:
        TemplateError: the first problem of a malformed template.
    """
    found = []
    for _, text in walk_strings(value):
        analysis = analyze(text)
        if analysis.problems:
            raise analysis.problems[0]
        found.extend(analysis.references)
    return found


def secret_names(value: Any) -> set[str]:
    """The secrets a value's templates use: what the engine grants the task and masks.

    Raises:
        TemplateError: a template is malformed.
    """
    return {str(ref.name) for ref in find_references(value) if ref.root == "secrets"}


# -- rendering ---------------------------------------------------------------------------------


class _NoItem:
    def __repr__(self) -> str:
        return "NO_ITEM"


#: `TemplateContext.item` outside a for_each task
NO_ITEM: Any = _NoItem()


def _no_secret(name: str) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class TemplateContext:
    """What templates see at one place of one run; each field is one root.

    `outputs` maps a task id to its outputs (a for_each task: the list of its iterations'
    outputs); only tasks that have outputs are in it. `secret(name)` returns a secret's
    value or None; a render only asks for the secrets its own templates name.
    """

    inputs: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)
    secret: Callable[[str], str | None] = _no_secret
    #: id, started_at (ISO 8601 text) and, in errors:/finally: tasks, error
    execution: Mapping[str, Any] = field(default_factory=dict)
    #: id, namespace, revision
    workflow: Mapping[str, Any] = field(default_factory=dict)
    #: id, attempt
    task: Mapping[str, Any] = field(default_factory=dict)
    #: type, scheduled_at, body, headers, execution_id (what is known for this trigger)
    trigger: Mapping[str, Any] = field(default_factory=dict)
    #: the workflow's `variables:`, already rendered
    variables: Mapping[str, Any] = field(default_factory=dict)
    item: Any = NO_ITEM
    item_index: int | None = None


class _TaskOutputs(Mapping[str, Any]):
    """`tasks.ID` -> `{"outputs": ...}`, built on access (a 10,000-task run renders often)."""

    def __init__(self, outputs: Mapping[str, Any]) -> None:
        self._outputs = outputs

    def __getitem__(self, task_id: str) -> Any:
        return {"outputs": self._outputs[task_id]}

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)


class _Secrets(Mapping[str, str]):
    """Only the secrets the rendered value names, fetched when used."""

    def __init__(self, secret: Callable[[str], str | None], allowed: set[str]) -> None:
        self._secret = secret
        self._allowed = allowed

    def __getitem__(self, name: str) -> str:
        value = self._secret(name) if name in self._allowed else None
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(name for name in self._allowed if self._secret(name) is not None))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _variables(context: TemplateContext, allowed_secrets: set[str]) -> dict[str, Any]:
    variables = {
        "inputs": context.inputs,
        "vars": context.variables,
        "tasks": _TaskOutputs(context.outputs),
        "secrets": _Secrets(context.secret, allowed_secrets),
        "execution": context.execution,
        "workflow": context.workflow,
        "task": context.task,
        "trigger": context.trigger,
    }
    if context.item is not NO_ITEM:
        variables["item"] = context.item
        variables["item_index"] = context.item_index
    return variables


def render(
    value: Any,
    context: TemplateContext,
    *,
    schema: Mapping[str, Any] | None = None,
    limits: TemplateLimits = DEFAULT_LIMITS,
) -> Any:
    """Deep-render templates in `value` and return a new value (the input is not changed).

    A string that is exactly one `{{ expr }}`, with nothing before or after it, becomes
    the expression's value with its JSON type (a list stays a list); any other string is
    text, non-strings written as JSON (`2`, `true`, `null`).

    `schema` is the JSON Schema the rendered value must match (an action's input schema).
    Where it declares a whole-value template's place a string (`type: string`, or a type
    list with string but not the value's type), a number, boolean or null is converted to
    that same JSON text: `message: "{{ tasks.a.outputs.count }}"` gives `"2"`, not `2`.
    Lists and mappings are never converted.

    Raises:
        TemplateError: a template is malformed, cannot be resolved, or went past `limits`.
    """
    allowed = secret_names(value)
    variables = _variables(context, allowed)
    with limited(limits):
        result = _render_value(value, variables, schema)
    _check_total(result, limits)
    return result


def _render_value(value: Any, variables: dict[str, Any], schema: Any) -> Any:
    if isinstance(value, str):
        return _render_string(value, variables, schema)
    if isinstance(value, Mapping):
        return {key: _render_value(child, variables, _property_schema(schema, key)) for key, child in value.items()}
    if isinstance(value, (list, tuple)):
        return [_render_value(child, variables, _item_schema(schema, index)) for index, child in enumerate(value)]
    return value


def _render_string(text: str, variables: dict[str, Any], schema: Any) -> Any:
    analysis = analyze(text)
    if analysis.kind == "text" and analysis.tree is None:
        return text
    if analysis.problems:
        raise analysis.problems[0]
    if analysis.kind == "simple":
        return _render_simple(text, analysis, variables, schema)
    return _render_jinja(text, analysis, variables, schema)


def _render_jinja(text: str, analysis: Analysis, variables: dict[str, Any], schema: Any) -> Any:
    try:
        if analysis.whole:
            result = plain(_compiled(text, True)(variables))
        else:
            result = _stream(_compiled(text, False), variables)
    except TemplateError as exc:  # a filter, operator or limit: say which template
        raise type(exc)(f"{_short(text)}: {exc}") from None
    except JinjaError as exc:  # UndefinedError and friends
        raise _missing(text, analysis, variables, exc) from None
    except RecursionError:
        raise TemplateError(f"{_short(text)}: template is nested too deeply") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateError(f"{_short(text)}: {exc}") from None
    if not analysis.whole:
        return result
    if isinstance(result, Undefined):
        raise _missing(text, analysis, variables, result)
    return _as_text_if_wanted(result, schema)


def _render_simple(text: str, analysis: Analysis, variables: dict[str, Any], schema: Any) -> Any:
    env = environment()
    values = []
    for index, piece in enumerate(analysis.pieces):
        if index % 2 == 0:
            continue
        root, steps = piece
        found = variables[root] if root in variables else env.undefined(name=root)
        for kind, key in steps:
            found = env.getattr(found, key) if kind == "attr" else env.getitem(found, key)
        if isinstance(found, Undefined):
            raise _missing(text, analysis, variables, found)
        values.append(found)
    if analysis.whole:
        return _as_text_if_wanted(values[0], schema)
    limit = _current_limit()
    parts, size = [], 0
    for index, piece in enumerate(analysis.pieces):
        part = piece if index % 2 == 0 else _finalized(values[index // 2])
        size += len(part)
        if size > limit:
            raise TemplateLimitExceeded(f"{_short(text)}: rendered text would be longer than {limit:,} characters")
        parts.append(part)
    return "".join(parts)


def _finalized(value: Any) -> str:
    result = environment().finalize(value)  # type: ignore[misc]
    return str(result)


def _current_limit() -> int:
    return current_limits().max_text


def _stream(template: Any, variables: dict[str, Any]) -> str:
    """Render text piece by piece, stopping as soon as it is too long."""
    limit = _current_limit()
    parts: list[str] = []
    size = 0
    for part in template.root_render_func(template.new_context(variables)):
        size += len(part)
        if size > limit:
            raise TemplateLimitExceeded(f"rendered text would be longer than {limit:,} characters")
        parts.append(part)
    return "".join(parts)


@functools.lru_cache(maxsize=1024)
def _compiled(text: str, whole: bool) -> Any:
    """Compile once per distinct string: loops and `~` routed through the limits."""
    env = environment(text)
    tree = env.parse(text)
    if whole:
        expression = tree.body[0].nodes[0]  # type: ignore[attr-defined]
        tree = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)], lineno=1)
    tree = route_through_limits(tree)
    tree.set_environment(env)
    template = env.from_string(tree)
    if not whole:
        return template

    def evaluate(variables: dict[str, Any]) -> Any:
        context = template.new_context(variables)
        for _ in template.root_render_func(context):
            pass
        return context.vars["result"]

    return evaluate


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


def _missing(text: str, analysis: Analysis, variables: dict[str, Any], error: Any) -> TemplateError:
    """The first reference that does not resolve, said as precisely as we can."""
    for ref in analysis.references:
        if ref.guarded:
            continue
        problem = _resolve_problem(ref, variables)
        if problem is not None:
            return TemplateError(f"{ref.raw}: {problem}")
    if isinstance(error, Undefined):
        message = error._undefined_message
    else:
        message = getattr(error, "message", None) or str(error)
    return TemplateError(f"{_short(text)}: {message}")


def _resolve_problem(ref: Reference, variables: Mapping[str, Any]) -> str | None:
    env = environment()
    if ref.root not in variables:
        if ref.root in ("item", "item_index"):
            return f"{ref.root} is only set in a task with for_each"
        return f"unknown name {ref.root!r}"
    value = variables[ref.root]
    parts = ref.parts
    if ref.root == "secrets":
        name = str(ref.name)
        try:
            value[name]
        except KeyError:
            return f"secret {name} is not set (set KESTRA_TRIO_SECRET_{name})"
        return None
    if ref.root == "tasks":
        if not parts:
            return None
        if parts[0] not in value:
            return f"task {parts[0]!r} has no outputs (it has not succeeded)"
        outputs = value[parts[0]]["outputs"]
        if len(parts) < 3:
            return None
        label = f"output {parts[2]!r} of task {parts[0]!r}"
        if not isinstance(outputs, Mapping) or parts[2] not in outputs:
            return f"task {parts[0]!r} has no output {parts[2]!r}{_has(outputs)}"
        return _descend(env, outputs[parts[2]], parts[3:], label)
    if not parts:
        return None
    owner_label = {"inputs": "input", "vars": "variable", "execution": "execution field", "workflow": "workflow field",
                   "task": "task field", "trigger": "trigger field"}.get(ref.root)  # fmt: skip
    first = env.getitem(value, parts[0]) if not isinstance(value, Mapping) else value.get(parts[0], _ABSENT)
    if first is _ABSENT or isinstance(first, Undefined):
        if ref.root == "execution" and parts[0] == "error":
            return "execution.error is only set in errors: and finally: tasks"
        if owner_label is None:
            return missing_message(value, parts[0])
        return f"{owner_label} {parts[0]!r} is not set{_has(value)}"
    label = f"{owner_label} {parts[0]!r}" if owner_label else f"{ref.root}"
    return _descend(env, first, parts[1:], label)


_ABSENT = object()


def _descend(env: Any, value: Any, parts: tuple[str | int, ...], label: str) -> str | None:
    where = label
    for part in parts:
        found = env.getitem(value, part)
        if isinstance(found, Undefined):
            return f"{where} {missing_message(value, part)}"
        value = found
        where = f"{part!r} in {label}"
    return None


def _has(mapping: Any) -> str:
    if not isinstance(mapping, Mapping):
        return f" (it is {describe(mapping)})"
    names = ", ".join(sorted(str(key) for key in mapping))
    return f" (has: {names})" if names else " (it has none)"


def _check_total(value: Any, limits: TemplateLimits) -> None:
    """A rendered value as JSON stays under 4 × max_text (a list repeating a big output
    a thousand times is small in memory but huge once stored or sent to a plugin)."""
    budget = 4 * limits.max_text
    size = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            size += len(item) + 2
        elif isinstance(item, Mapping):
            size += 2 + 4 * len(item)
            for key, child in item.items():
                size += len(str(key))
                stack.append(child)
        elif isinstance(item, (list, tuple)):
            size += 2 + 2 * len(item)
            stack.extend(item)
        else:
            size += 8
        if size > budget:
            raise TemplateLimitExceeded(
                f"rendered value would be larger than {budget:,} characters as JSON; pass less data between tasks"
            )


# -- whole-value templates into string properties ----------------------------------------


def _property_schema(schema: Any, key: Any) -> Any:
    """The schema a mapping's `key` must match: `properties`, then `patternProperties`,
    then `additionalProperties`; None when it cannot be told (no conversion then)."""
    if not isinstance(schema, Mapping):
        return None
    properties = schema.get("properties")
    if isinstance(properties, Mapping) and key in properties:
        return properties[key]
    patterns = schema.get("patternProperties")
    if isinstance(patterns, Mapping) and isinstance(key, str):
        for pattern, sub in patterns.items():
            try:
                if re.search(pattern, key):
                    return sub
            except re.error:
                return None
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, Mapping) else None


def _item_schema(schema: Any, index: int) -> Any:
    """The schema list item `index` must match: `prefixItems`, then `items`."""
    if not isinstance(schema, Mapping):
        return None
    prefix = schema.get("prefixItems")
    if isinstance(prefix, list):
        if index < len(prefix):
            return prefix[index]
    items = schema.get("items")
    if isinstance(items, list):  # the draft 4-7 tuple form
        return items[index] if index < len(items) else None
    return items if isinstance(items, Mapping) else None


def _as_text_if_wanted(value: Any, schema: Any) -> Any:
    """A number, boolean or null as its JSON text when `schema` wants a string instead."""
    if isinstance(value, (str, list, dict)) or not isinstance(schema, Mapping):
        return value
    declared = schema.get("type")
    types = [declared] if isinstance(declared, str) else declared
    if not isinstance(types, list) or "string" not in types or _json_type_matches(value, types):
        return value
    return json.dumps(value)


def _json_type_matches(value: Any, types: list[Any]) -> bool:
    """JSON Schema's `type` rule: an int is also a number, 2.0 is also an integer."""
    if value is None:
        return "null" in types
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, int):
        return "integer" in types or "number" in types
    if isinstance(value, float):
        return "number" in types or ("integer" in types and value.is_integer())
    return True  # anything else (not JSON) is left alone

