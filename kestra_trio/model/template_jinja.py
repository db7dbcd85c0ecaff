"""Analysis of templates that need Jinja's parser: references and problems from its AST.

`templates.analyze` comes here only for strings that are more than plain `{{ a.b }}`
paths, so Jinja is imported only by workflows that use it (or at the first render).
"""

from __future__ import annotations

import re
from typing import Any

from jinja2 import TemplateSyntaxError, nodes

from kestra_trio.model.diagnostics import did_you_mean
from kestra_trio.model.template_errors import TemplateError, UnsupportedTemplate
from kestra_trio.model.template_sandbox import FILTERS, TESTS, environment
from kestra_trio.model.templates import ROOTS, Analysis, Reference, _path_problem, _path_text, _reference, _short

__all__ = ["analyze_jinja"]

_SUPPORTED = (
    "templates support {{ expressions }}, filters, {% if %}, {% for %}, {% set x = ... %}, {% with %} "
    "and {% raw %}...{% endraw %}"
)
_LITERAL_HINT = "for a literal '{{' or '{%', wrap it in {% raw %}...{% endraw %}"


def analyze_jinja(text: str) -> Analysis:
    """Parse `text` with Jinja and walk its AST (see `templates.analyze`)."""
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
            self.problems.append(UnsupportedTemplate(f"unknown {what} {node.name!r}{did_you_mean(node.name, known)}"))

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

