"""Where things live and the settings read from the environment (pure: no I/O beyond os.environ)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from kestra_trio.errors import ConfigError

DB_ENV = "KESTRA_TRIO_DB"
PLUGIN_PATH_ENV = "KESTRA_TRIO_PLUGIN_PATH"
SECRET_ENV_PREFIX = "KESTRA_TRIO_SECRET_"
RETENTION_ENV = "KESTRA_TRIO_LOG_RETENTION_DAYS"
RETENTION_ENV_ALIAS = "AUTOKESTRA_LOG_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30
DEFAULT_MAX_PARALLEL = 8
#: tasks (child processes) at once: past this a machine runs out of pids and memory first
MAX_PARALLEL = 1000
DEFAULT_KILL_GRACE = 5.0
DEFAULT_CLOSE_GRACE = 10.0


def default_db_path(environ: dict[str, str] | None = None) -> Path:
    """`$XDG_DATA_HOME/kestra-trio/kestra.db`, else `~/.local/share/kestra-trio/kestra.db`."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / "kestra-trio" / "kestra.db"


def resolve_db_path(option: str | os.PathLike[str] | None, environ: dict[str, str] | None = None) -> Path:
    """`--db` wins over `KESTRA_TRIO_DB`, which wins over the per-user default."""
    env = os.environ if environ is None else environ
    if option is not None and os.fspath(option) == "":
        # an empty --db (e.g. `--db "$UNSET_VAR"`) would silently mean the default database
        raise ConfigError("--db is empty; give the database file's path (or leave --db out for the default)")
    if option:
        return Path(option).expanduser()
    if env.get(DB_ENV):
        return Path(env[DB_ENV]).expanduser()
    return default_db_path(env)


def retention_days(environ: dict[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    name = RETENTION_ENV if env.get(RETENTION_ENV) else RETENTION_ENV_ALIAS
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return DEFAULT_RETENTION_DAYS
    try:
        days = ascii_int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of days (e.g. 30), got {raw!r}") from None
    if days < 1:
        raise ConfigError(f"{name} must be at least 1 day, got {days}")
    if days > 3650:
        raise ConfigError(f"{name} must be at most 3650 days (10 years), got {days}")
    return days


_ASCII_INT = re.compile(r"[+-]?[0-9]+")
_ASCII_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def ascii_int(text: str) -> int:
    """A whole number written in ASCII digits; int() alone also takes `1_000` and `٣`."""
    if not _ASCII_INT.fullmatch(text):
        raise ValueError(text)
    return int(text)


def ascii_float(text: str) -> float:
    """A number written in ASCII digits (no `inf`, `nan`, `1_0` or other scripts' digits)."""
    if not _ASCII_FLOAT.fullmatch(text):
        raise ValueError(text)
    return float(text)


MAX_PARALLEL_ENV = "KESTRA_TRIO_MAX_PARALLEL"
KILL_GRACE_ENV = "KESTRA_TRIO_KILL_GRACE"
CLOSE_GRACE_ENV = "KESTRA_TRIO_CLOSE_GRACE"


def max_parallel(option: int | None, environ: dict[str, str] | None = None) -> int:
    """`--max-parallel` wins over `KESTRA_TRIO_MAX_PARALLEL`, else 8."""
    env = os.environ if environ is None else environ
    if option is None:
        raw = env.get(MAX_PARALLEL_ENV, "").strip()
        if not raw:
            return DEFAULT_MAX_PARALLEL
        try:
            option = ascii_int(raw)
        except ValueError:
            raise ConfigError(f"{MAX_PARALLEL_ENV} must be a whole number (e.g. 8), got {raw!r}") from None
    if not 1 <= option <= MAX_PARALLEL:
        raise ConfigError(f"--max-parallel / {MAX_PARALLEL_ENV} must be between 1 and {MAX_PARALLEL}, got {option}")
    return option


#: a plugin that needs more than an hour to shut down is not shutting down
MAX_KILL_GRACE = 3600.0


def kill_grace(option: float | None, environ: dict[str, str] | None = None) -> float:
    """Seconds between SIGTERM and SIGKILL: `--kill-grace`, else `KESTRA_TRIO_KILL_GRACE`, else 5."""
    return _seconds(option, "--kill-grace", KILL_GRACE_ENV, DEFAULT_KILL_GRACE, environ)


def close_grace(option: float | None, environ: dict[str, str] | None = None) -> float:
    """After a stop, how long writes the database refuses are retried once the tasks are
    stopped: `--close-grace`, else `KESTRA_TRIO_CLOSE_GRACE`, else 10."""
    return _seconds(option, "--close-grace", CLOSE_GRACE_ENV, DEFAULT_CLOSE_GRACE, environ)


def _seconds(option: float | None, flag: str, name: str, default: float, environ: dict[str, str] | None) -> float:
    env = os.environ if environ is None else environ
    if option is None:
        raw = env.get(name, "").strip()
        if not raw:
            return default
        try:
            option = ascii_float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number of seconds (e.g. {default:g}), got {raw!r}") from None
    if not 0 <= option <= MAX_KILL_GRACE:
        raise ConfigError(f"{flag} / {name} must be between 0 and {MAX_KILL_GRACE:g} seconds, got {option:g}")
    return option
