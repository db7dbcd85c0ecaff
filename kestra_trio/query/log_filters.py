"""Log filters as a user writes them (`--level warn,error`, `--since 5m`; the API's `level=`,
`since=`): one parser and one wording for the CLI and the HTTP API."""

from __future__ import annotations

from kestra_trio.model.durations import parse_duration as _parse_duration

LOG_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
LEVEL_ALIASES = {"WARNING": "WARN"}
INVALID_LEVEL = "Invalid log level. Must be one of: DEBUG, INFO, WARN, ERROR"
INVALID_TIME = "Invalid time format. Examples: 5m, 2h, 1d"


def parse_since(text: str) -> float:
    """`30s`, `5m`, `2h`, `1d` (also `500ms`, `1h30m`) → seconds; a unit is required.

    Raises:
        ValueError: with the exact message `execution logs` prints.
    """
    stripped = (text or "").strip()
    if not stripped or not stripped[-1].isalpha():
        raise ValueError(INVALID_TIME)
    try:
        value = _parse_duration(stripped.lower())
    except ValueError as exc:
        # well-formed but beyond the bound: say so, or "5m, 2h, 1d" would puzzle the user
        too_long = "too long" in str(exc)
        raise ValueError(f"{INVALID_TIME} (at most 3650d)" if too_long else INVALID_TIME) from None
    if value <= 0:
        raise ValueError(INVALID_TIME)
    return value


def parse_levels(text: str) -> tuple[str, ...]:
    """`ERROR` or `warn,error` → `("WARN", "ERROR")` (WARNING accepted for WARN).

    Raises:
        ValueError: with the exact message `execution logs` prints.
    """
    levels: list[str] = []
    for part in (text or "").split(","):
        name = part.strip().upper()
        name = LEVEL_ALIASES.get(name, name)
        if name not in LOG_LEVELS:
            raise ValueError(INVALID_LEVEL)
        if name not in levels:
            levels.append(name)
    return tuple(levels)
