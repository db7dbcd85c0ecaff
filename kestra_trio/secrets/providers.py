"""Resolve secrets once at execution start: `KESTRA_TRIO_SECRET_<NAME>` (value) or `..._FILE` (path)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from kestra_trio.config import SECRET_ENV_PREFIX
from kestra_trio.errors import ConfigError


def resolve_secrets(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """All configured secrets by NAME. A `_FILE` variant is read from disk (trailing newline dropped)."""
    env = os.environ if environ is None else environ
    found: dict[str, str] = {}
    for key, value in env.items():
        if not key.startswith(SECRET_ENV_PREFIX) or len(key) == len(SECRET_ENV_PREFIX):
            continue
        name = key[len(SECRET_ENV_PREFIX):]
        base = name[: -len("_FILE")] if name.endswith("_FILE") else ""
        if not base:
            found[name] = value
            continue
        if SECRET_ENV_PREFIX + base in env:
            # which one is meant? silently preferring one would use a secret the user did not choose
            raise ConfigError(f"both {SECRET_ENV_PREFIX}{base} and {key} are set; keep one of them")
        try:
            with open(value, encoding="utf-8") as handle:
                found[base] = handle.read().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{key}: cannot read secret file {value!r}: {exc.strerror or exc}") from None
    return found
