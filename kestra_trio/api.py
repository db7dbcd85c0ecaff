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
    from kestra_trio.engine.runner import EngineOptions, run_execution
    from kestra_trio.model.inputs import coerce_inputs
    from kestra_trio.model.loading import load_workflow
    from kestra_trio.plugin_runtime.registry import PluginRegistry
    from kestra_trio.storage.db import open_database

    registry = PluginRegistry.discover(extra_dirs=list(plugin_dirs))
    workflow = load_workflow(path, catalog=registry)
    raw = {k: v for k, v in (inputs or {}).items() if isinstance(v, str)}
    values = coerce_inputs(workflow, raw)
    values.update({k: v for k, v in (inputs or {}).items() if not isinstance(v, str)})
    from kestra_trio.plugin_runtime.sandbox import check_ready, database_files

    options = EngineOptions(max_parallel=max_parallel, handle_signals=handle_signals, workflow_path=str(path))
    db_path = resolve_db_path(db)
    await check_ready(workflow, protected=database_files(db_path))  # SandboxUnavailable: nothing runs
    async with open_database(db_path) as database:
        return await run_execution(workflow, values, db=database, registry=registry, options=options)
