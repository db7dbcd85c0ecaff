"""Shared fixtures. `tests/` is on sys.path (pyproject `pythonpath`), so `factories` imports directly."""

from __future__ import annotations

import pytest

from factories import T0


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # rich's own tests do the same: colour decisions must not depend on the developer's shell
    for name in ("FORCE_COLOR", "NO_COLOR", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def t0() -> int:
    return T0
