"""Fixtures of the restricted-mode tests; the helpers are in tests/sandbox_support.py."""

from __future__ import annotations

import pytest

from sandbox_support import build_docker_image


@pytest.fixture(scope="session")
def docker_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A busybox-static image made with `docker import` (no registry needed)."""
    return build_docker_image(tmp_path_factory)
