"""The pytest plugin (entry point `pytest11: kestra_trio`): the `kt` fixture.

Loaded in every pytest session of a project that installed kestra-trio, so it imports only
pytest here; the engine loads when a test first asks for `kt`. `kt` is an async fixture:
tests using it run under pytest-trio (`trio_mode = true`, or `@pytest.mark.trio`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kestra_trio.testing.harness import KestraTrio

PLUGINS_INI = "kestra_trio_plugins"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        PLUGINS_INI, type="paths", default=[],
        help="plugin folders (or folders of them) the `kt` fixture loads, relative to the ini file",
    )


@pytest.fixture
async def kt(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> AsyncIterator[KestraTrio]:
    """A kestra-trio engine on a temporary database and plugin path (`kt.plugin_dir`).

    `await kt.run(workflow, inputs=..., secrets=..., mocks=...)`, `await kt.action("ns/p.a", inputs)`.
    With pytest-trio's `autojump_clock`, retry backoffs, timeouts and `core/util.sleep` skip."""
    from kestra_trio.testing.harness import open_harness

    root = tmp_path_factory.mktemp("kt")
    async with open_harness(root, plugin_dirs=request.config.getini(PLUGINS_INI)) as harness:
        yield harness


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> object:
    """A failing test that uses `kt` shows its own failure, not the trio nursery's
    one-exception group around it (pytest-trio runs the test in a nursery)."""
    try:
        return (yield)
    except BaseExceptionGroup as group:
        from kestra_trio.errors import only_leaf

        leaf = only_leaf(group)
        if leaf is None or "kt" not in pyfuncitem.fixturenames:
            raise
        raise leaf from None

