"""Workflow defaults an operator sets in the environment (read once, at the start of a run).

There is no default task timeout: a two-hour job must not die at 30 seconds (Kestra,
Prefect and Airflow have none either). An operator who wants one sets
`KESTRA_TRIO_DEFAULT_TASK_TIMEOUT`; a task's own `timeout:` always wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from kestra_trio.errors import ConfigError
from kestra_trio.model.durations import DURATION_EXAMPLES, parse_duration

__all__ = [
    "DEFAULT_FOR_EACH_MAX_ITEMS",
    "DEFAULT_TASK_TIMEOUT_ENV",
    "FOR_EACH_MAX_ITEMS_ENV",
    "default_task_timeout",
    "for_each_max_items",
]

DEFAULT_TASK_TIMEOUT_ENV = "KESTRA_TRIO_DEFAULT_TASK_TIMEOUT"
FOR_EACH_MAX_ITEMS_ENV = "KESTRA_TRIO_FOR_EACH_MAX_ITEMS"
DEFAULT_FOR_EACH_MAX_ITEMS = 10_000
#: a for_each list can never be longer than this, whatever the environment says
FOR_EACH_HARD_LIMIT = 1_000_000


def default_task_timeout(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds per attempt for tasks without `timeout:`; None (no limit) when unset.

    Raises:
        ConfigError: the variable is set but is not a duration longer than 0.
    """
    env = os.environ if environ is None else environ
    raw = env.get(DEFAULT_TASK_TIMEOUT_ENV, "").strip()
    if not raw:
        return None
    try:
        seconds = parse_duration(raw)
    except ValueError:
        raise ConfigError(
            f"{DEFAULT_TASK_TIMEOUT_ENV} must be a duration such as {DURATION_EXAMPLES}, got {raw!r}"
        ) from None
    if seconds < 0.001:
        raise ConfigError(f"{DEFAULT_TASK_TIMEOUT_ENV} must be at least 1ms, got {raw!r}")
    return seconds


def for_each_max_items(environ: Mapping[str, str] | None = None) -> int:
    """How many items one for_each may run (10,000 unless `KESTRA_TRIO_FOR_EACH_MAX_ITEMS`).

    Raises:
        ConfigError: the variable is set but is not a whole number from 1 to 1,000,000.
    """
    from kestra_trio.config import ascii_int

    env = os.environ if environ is None else environ
    raw = env.get(FOR_EACH_MAX_ITEMS_ENV, "").strip()
    if not raw:
        return DEFAULT_FOR_EACH_MAX_ITEMS
    try:
        count = ascii_int(raw)
    except ValueError:
        raise ConfigError(f"{FOR_EACH_MAX_ITEMS_ENV} must be a whole number (e.g. 10000), got {raw!r}") from None
    if not 1 <= count <= FOR_EACH_HARD_LIMIT:
        raise ConfigError(f"{FOR_EACH_MAX_ITEMS_ENV} must be between 1 and {FOR_EACH_HARD_LIMIT:,}, got {count}")
    return count
