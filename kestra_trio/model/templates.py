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
  analysed by a small linear scanner and rendered with the sandbox's own lookups, so the
  result is the same (a property test compares the two) at a fraction of the cost, and
  validating such a workflow does not even import Jinja.

This module is the public API and the Jinja-free core; `template_jinja` analyses the rest,
`template_render` renders, `template_sandbox` is the environment, `template_errors` the
errors and limits, `template_scope` what is legal where.
"""


from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from kestra_trio.model.template_errors import (
    DEFAULT_LIMITS,
    TemplateError,
    TemplateLimitExceeded,
    TemplateLimits,
    UnsupportedTemplate,
)

if TYPE_CHECKING:
    from jinja2 import nodes

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
    from kestra_trio.model.template_jinja import analyze_jinja  # Jinja is loaded only when needed

    return analyze_jinja(text)


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
    from kestra_trio.model.template_render import render_value

    return render_value(value, context, schema, limits)



def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."
