"""A workflow's source as it may be shown to an API reader: webhook keys written in it masked.

A literal webhook key is a credential, and YAML can write one text in many ways (`"\\x41"`,
`'it''s'`, a folded block, an anchor defined elsewhere and used as `key: *k`), so masking
replaces where each key node is WRITTEN — its exact source span, found by parsing the source
with the workflow loader — never the parsed text. Every other scalar whose value is a key,
and the key's text wherever it still appears verbatim (a comment), is masked too. When a key
cannot be placed (the source does not parse, or a key is reached through an aliased list of
triggers), nothing of the source is shown: masking fails closed.

A key written as `{{ secrets.NAME }}` is a reference, not the credential, and stays readable.
"""

from __future__ import annotations

import re
from typing import Any

from kestra_trio.errors import WorkflowError
from kestra_trio.model.diagnostics import join_path
from kestra_trio.model.loading import Span, value_spans
from kestra_trio.model.workflow import secret_reference

__all__ = ["MASKED_KEY", "NOT_SHOWN", "mask_webhook_keys"]

#: what a key's value becomes (quoted: the shown source stays YAML that parses)
MASKED_KEY = '"***SECRET***"'
#: the source in place of one whose keys cannot all be placed
NOT_SHOWN = "(the source is not shown: its webhook keys could not all be located to mask them)"
#: a key this short is masked where it is written, not searched for in the rest of the text
#: (`key: ab` in a revision that never loaded must not turn every `ab` into ***SECRET***)
MIN_TEXT_SEARCH = 8

# node properties written before a value (`&anchor`, `!!str`): kept, so aliases still resolve
_PROPERTIES = re.compile(r"(?:[&!]\S*\s+)*")


def mask_webhook_keys(source: str) -> str | None:
    """`source` with every literal webhook key written in it as `"***SECRET***"`; None when that
    cannot be done with certainty (the caller shows nothing of the source)."""
    try:
        data, spans = value_spans(source)
    except WorkflowError:
        return None
    keys: dict[str, Any] = {}  # path of a trigger's `key:` -> its value
    for path, trigger in _triggers(data):
        if "key" in trigger:
            keys[join_path(path, "key")] = trigger["key"]
    literal = {path: value for path, value in keys.items()
               if value is not None and not (isinstance(value, str) and secret_reference(value))}
    if not literal:
        return source
    chosen: list[Span] = []
    for path in literal:
        if not spans.get(path):
            return None  # inside an aliased list or mapping: cannot place it
        chosen.extend(spans[path])
    texts = {value for value in literal.values() if isinstance(value, str) and value}
    for path, value in _scalars(data):  # the same key as another value (`variables:`), any spelling
        if value in texts and path in spans:
            chosen.extend(spans[path])
    masked = _replace(source, chosen)
    for text in sorted(texts, key=len, reverse=True):
        if len(text) >= MIN_TEXT_SEARCH:
            masked = masked.replace(text, "***SECRET***")  # a comment, a URL written in a description
    return masked


def _triggers(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(path, mapping) of every trigger written under `triggers:` or `trigger:`, as a mapping or a
    list of them, whatever its type: a revision that does not load may still hold a real key.
    (Not deeper: a trigger's `inputs:` may well have a field named `key`.)"""
    found = []
    for name in ("triggers", "trigger"):
        value = data.get(name)
        if isinstance(value, dict):
            found.append((name, value))
        elif isinstance(value, list):
            found += [(join_path(name, i), item) for i, item in enumerate(value) if isinstance(item, dict)]
    return found


def _scalars(data: Any) -> list[tuple[str, Any]]:
    """(path, value) of every text value; paths as `value_spans` names them."""
    found, stack = [], [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack += [(join_path(path, k), v) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(join_path(path, i), v) for i, v in enumerate(value)]
        elif isinstance(value, str):
            found.append((path, value))
    return found


def _replace(source: str, spans: list[Span]) -> str:
    """Each span's value (its properties and trailing blank lines kept) as MASKED_KEY; a span
    inside another is covered by the outer one."""
    merged: list[Span] = []
    for start, end in sorted(set(spans)):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    parts, at = [], 0
    for start, end in merged:
        start = _PROPERTIES.match(source, start, end).end()
        while end > start and source[end - 1] in " \t\r\n":  # a block scalar's span ends after its line breaks
            end -= 1
        if source[start:end].startswith("*"):
            continue  # an alias: the anchored value it names is masked where it is defined
        parts += [source[at:start], MASKED_KEY]
        at = end
    parts.append(source[at:])
    return "".join(parts)
