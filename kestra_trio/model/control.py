"""What a rendered `run_if` and `for_each` mean: pure rules the scheduler applies.

The scheduler renders the template (`templates.render`) and hands the value here; a value
that does not fit is a TemplateError, which fails the task with a clear reason.
"""

from __future__ import annotations

from typing import Any

from kestra_trio.model.defaults import FOR_EACH_MAX_ITEMS_ENV
from kestra_trio.model.template_errors import TemplateError, describe

__all__ = ["condition_holds", "for_each_items", "iteration_id"]

_TRUE = frozenset({"true"})
_FALSE = frozenset({"false"})


def condition_holds(value: Any) -> bool:
    """A rendered `run_if`: true or false (or that text, any case, spaces around ignored).

    Strict on purpose: `"{{ inputs.flag }}"` giving "no", 0 or null is an error rather
    than a guess, so a typo never silently skips (or runs) a task.

    Raises:
        TemplateError: the value is not a boolean.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    shown = repr(value) if isinstance(value, str) and len(value) <= 40 else describe(value)
    raise TemplateError(
        f"run_if must give true or false, got {shown} (compare explicitly, e.g. {{{{ x == 'prod' }}}} or {{{{ n > 0 }}}})"
    )


def for_each_items(value: Any, limit: int) -> list[Any]:
    """A rendered `for_each`: the list of items, at most `limit` of them.

    Raises:
        TemplateError: not a list, or more than `limit` items.
    """
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        raise TemplateError(f"for_each must give a list, got {describe(value)}")
    if len(value) > limit:
        raise TemplateError(
            f"for_each gave {len(value):,} items; at most {limit:,} may run (set {FOR_EACH_MAX_ITEMS_ENV} to change it)"
        )
    return value


def iteration_id(task_id: str, index: int) -> str:
    """The task run id of one for_each iteration: `each[0]`, `each[1]` ..."""
    return f"{task_id}[{index}]"
