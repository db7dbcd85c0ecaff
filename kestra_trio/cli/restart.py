"""`kestra-trio execution restart ID [--from TASK]`: run a finished execution again, in place.

Only what failed or did not run (or TASK and what follows) runs, as new attempts of the same
task runs; the tasks that succeeded keep their state and outputs. Output and exit codes are
`run`'s: the execution is pinned to this process, which shows it and waits for its end.
"""

from __future__ import annotations

from pathlib import Path


async def restart_execution(
    execution_id: str,
    *,
    from_task: str | None,
    reason: str | None,
    max_parallel: int | None,
    plugins: list[Path] | None,
    kill_grace: float | None,
    as_json: bool,
    db: str | None,
) -> int:
    from kestra_trio.cli.run import RunView, exit_code
    from kestra_trio.config import kill_grace as resolve_kill_grace
    from kestra_trio.config import max_parallel as resolve_max_parallel
    from kestra_trio.config import resolve_db_path
    from kestra_trio.engine.context import EngineOptions
    from kestra_trio.engine.restart import NothingToRestart, UnknownTask
    from kestra_trio.errors import UsageError
    from kestra_trio.plugin_runtime.registry import PluginRegistry
    from kestra_trio.service.app import ServiceConfig, open_service
    from kestra_trio.storage.db import open_database
    from kestra_trio.storage.executions import ExecutionStore

    kill_grace = resolve_kill_grace(kill_grace)
    registry = PluginRegistry.discover(extra_dirs=plugins or [])
    db_path = resolve_db_path(db)
    async with open_database(db_path, must_exist=True) as database:
        resolved = await ExecutionStore(database).resolve_id(execution_id)
    options = EngineOptions(max_parallel=resolve_max_parallel(max_parallel), kill_grace=kill_grace)
    async with open_service(ServiceConfig(db_path, registry, options)) as service:
        view: RunView | None = None
        events: list = []

        def on_progress(event) -> None:  # (the view exists once the workflow is known)
            if view is None:
                events.append(event)
            else:
                view.on_progress(event)

        try:
            workflow = await service.restart(resolved, from_task=from_task, by="user", reason=reason, on_progress=on_progress)
        except UnknownTask as exc:
            raise UsageError(f"--from {from_task!r}: {exc}") from None
        except NothingToRestart as exc:
            raise UsageError(f"{exc} (use --from TASK to run a task and what follows again)") from None
        view = RunView(workflow, as_json=as_json, kill_grace=kill_grace, db_hint=str(Path(db).absolute()) if db else None)
        with view:
            service.start_soon(view.tick)
            for event in events:
                view.on_progress(event)
            result = await service.wait(resolved)
    view.finish(result)
    return exit_code(result)
