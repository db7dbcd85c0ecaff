"""`run_workflow`: run a workflow file from Python, as `kestra-trio run` does (without the view)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


async def run_workflow(
    path: str | Path,
    inputs: Mapping[str, Any] | None = None,
    *,
    db: str | Path | None = None,
    plugin_dirs: Sequence[Path] = (),
    max_parallel: int = 8,
    handle_signals: bool = False,
):
    """Load, validate and run a workflow inside the caller's trio run; returns ExecutionResult.

    `inputs` are raw strings (as on the command line) or already-typed values.
    """
    from kestra_trio.config import resolve_db_path
    from kestra_trio.engine.context import EngineOptions
    from kestra_trio.model.inputs import coerce_inputs
    from kestra_trio.plugin_runtime.registry import PluginRegistry
    from kestra_trio.service.app import ServiceConfig, open_service
    from kestra_trio.service.registry import load_file, revision_for_run

    registry = PluginRegistry.discover(extra_dirs=list(plugin_dirs))
    loaded = load_file(Path(path), registry)
    workflow = loaded.workflow
    raw = {k: v for k, v in (inputs or {}).items() if isinstance(v, str)}
    values = coerce_inputs(workflow, raw)
    values.update({k: v for k, v in (inputs or {}).items() if not isinstance(v, str)})
    from kestra_trio.plugin_runtime.sandbox import check_ready, database_files

    options = EngineOptions(max_parallel=max_parallel, handle_signals=handle_signals)
    db_path = resolve_db_path(db)
    await check_ready(workflow, protected=database_files(db_path))  # SandboxUnavailable: nothing runs
    async with open_service(ServiceConfig(db_path, registry, options)) as service:
        revision = await revision_for_run(service.workflows, loaded)
        return await service.run(workflow, values, workflow_path=str(path), workflow_revision=revision)
