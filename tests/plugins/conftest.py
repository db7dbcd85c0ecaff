"""Run bundled plugins through the real process runtime."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from kestra_trio.observability.records import LogEntry
from kestra_trio.plugin_runtime.process import run_action
from kestra_trio.plugin_runtime.registry import PluginRegistry
from kestra_trio.plugin_runtime.runtime import Invocation, Outcome

RunBundled = Callable[..., Awaitable[tuple[Outcome, list[LogEntry]]]]


@pytest.fixture(scope="session")
def registry() -> PluginRegistry:
    return PluginRegistry.discover(environ={})


@pytest.fixture
def run_bundled(registry: PluginRegistry) -> RunBundled:
    """``await run_bundled("core/log.message", {...}, runtime=None, workdir=None, secrets=None)``."""

    async def run(
        task_type: str,
        inputs: dict[str, Any],
        *,
        runtime: str | None = None,
        workdir: Path | None = None,
        secrets: dict[str, str] | None = None,
    ) -> tuple[Outcome, list[LogEntry]]:
        manifest, action = registry.resolve(task_type)
        if runtime is not None:
            manifest = dataclasses.replace(manifest, runtime=runtime)
        inv = Invocation("exec", "task", 1, task_type, manifest, action, inputs, secrets or {}, workdir)
        send, receive = trio.open_memory_channel[LogEntry](100)
        entries: list[LogEntry] = []

        async def consume() -> None:
            async for item in receive:  # a runtime sends single entries or lists of them
                entries.extend(item if isinstance(item, list) else [item])

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                with send:
                    outcome = await run_action(inv, log_send=send)
        return outcome, entries

    return run
