"""Helpers for running real plugin processes: a plugin folder factory and a runner."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from kestra_trio.observability.records import LogEntry
from kestra_trio.plugin_runtime.manifest import PluginManifest, load_manifest
from kestra_trio.plugin_runtime.process import run_action
from kestra_trio.plugin_runtime.runtime import Invocation, Outcome

MakePlugin = Callable[..., PluginManifest]
RunPlugin = Callable[..., Awaitable[tuple[Outcome, list[LogEntry]]]]


@pytest.fixture
def make_plugin(tmp_path: Path) -> MakePlugin:
    """Write a plugin folder whose action `go` runs ``code`` (Python, or argv via command)."""
    counter = iter(range(1000))

    def make(
        code: str = "",
        *,
        command: list[str] | None = None,
        input_schema: dict[str, Any] | None = None,
        output_schema: dict[str, Any] | None = None,
        runtime: str = "process",
        name: str = "test",
        namespace: str = "t",
        action: str = "go",
    ) -> PluginManifest:
        folder = tmp_path / f"plugin{next(counter)}"
        folder.mkdir()
        (folder / "main.py").write_text(textwrap.dedent(code))
        spec: dict[str, Any] = {"name": action}
        if input_schema is not None:
            spec["input"] = input_schema
        if output_schema is not None:
            spec["output"] = output_schema
        manifest = {
            "name": name,
            "namespace": namespace,
            "version": "1.0.0",
            "runtime": runtime,
            "command": command or ["{python}", "-S", "main.py"],
            "actions": [spec],
        }
        (folder / "plugin.yaml").write_text(json.dumps(manifest))  # JSON is YAML
        return load_manifest(folder)

    return make


def invocation(manifest: PluginManifest, inputs: dict[str, Any] | None = None, **kw: Any) -> Invocation:
    action = kw.pop("action", manifest.actions[0].name)
    spec = manifest.action(action)
    assert spec is not None
    return Invocation(
        execution_id=kw.pop("execution_id", "exec-1"),
        task_id=kw.pop("task_id", "task-1"),
        attempt=kw.pop("attempt", 1),
        task_type=f"{manifest.full_name}.{action}",
        manifest=manifest,
        action=spec,
        inputs=inputs or {},
        secrets=kw.pop("secrets", {}),
        workdir=kw.pop("workdir", None),
    )


@pytest.fixture
def inv_for() -> Callable[..., Invocation]:
    """``inv_for(manifest, inputs, **fields)`` → an Invocation of its first action."""
    return invocation


@pytest.fixture
def run_plugin() -> RunPlugin:
    """Run an invocation to completion, collecting every LogEntry sent."""

    async def run(inv: Invocation, **kwargs: Any) -> tuple[Outcome, list[LogEntry]]:
        send, receive = trio.open_memory_channel[LogEntry](64)
        entries: list[LogEntry] = []

        async def consume() -> None:
            async for item in receive:  # a runtime sends single entries or lists of them
                entries.extend(item if isinstance(item, list) else [item])

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                with send:
                    outcome = await run_action(inv, log_send=send, **kwargs)
        return outcome, entries

    return run


@pytest.fixture(scope="session")
def docker_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A busybox-static image made with `docker import` (skips with the reason when no engine)."""
    from sandbox_support import build_docker_image

    return build_docker_image(tmp_path_factory)
