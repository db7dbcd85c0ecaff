"""`kestra-trio run WORKFLOW`: validate, create the execution, run it, show it, exit with its state."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from kestra_trio.cli.params import OptionalNumber, OptionalWholeNumber
from kestra_trio.errors import ExitCode, UsageError, WorkflowInvalid


def _print_err(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _print_out(line: str) -> None:
    """Progress is a courtesy: a closed pipe or terminal (EPIPE, EIO) must not stop the run."""
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


async def run(
    workflow: Path,
    /,
    *,
    inputs: Annotated[list[str] | None, Parameter(name=["--input", "-i"])] = None,
    max_parallel: OptionalWholeNumber = None,
    db: Path | None = None,
    plugins: list[Path] | None = None,
    kill_grace: OptionalNumber = None,
    close_grace: OptionalNumber = None,
    as_json: Annotated[bool, Parameter(name="--json")] = False,
) -> int:
    """Run a workflow and wait for it to finish.

    (`--help` shows `kestra_trio.cli.RUN_HELP`.)

    Parameters
    ----------
    workflow
        The workflow YAML file.
    inputs
        A run-time input as KEY=VALUE; repeat for several.
    max_parallel
        How many tasks may run at the same time (default: $KESTRA_TRIO_MAX_PARALLEL, else 8).
    db
        SQLite database file (default: $KESTRA_TRIO_DB, else ~/.local/share/kestra-trio/kestra.db).
    plugins
        Extra plugin directories (also: KESTRA_TRIO_PLUGIN_PATH).
    kill_grace
        Seconds between SIGTERM and SIGKILL when a task is cancelled or times out
        (default: $KESTRA_TRIO_KILL_GRACE, else 5).
    close_grace
        After a stop, how many seconds writes the database refuses (disk full, read-only
        file) are still retried once the tasks are stopped; what is then still unwritten is
        counted as lost and the run exits 3 (default: $KESTRA_TRIO_CLOSE_GRACE, else 10).
    as_json
        Print one JSON object with the execution id, final state and per-task results.
    """
    from kestra_trio.config import close_grace as resolve_close_grace
    from kestra_trio.config import kill_grace as resolve_kill_grace
    from kestra_trio.config import max_parallel as resolve_max_parallel
    from kestra_trio.config import resolve_db_path, retention_days
    from kestra_trio.engine.context import EngineOptions
    from kestra_trio.model.inputs import coerce_inputs, parse_input_args
    from kestra_trio.plugin_runtime.registry import PluginRegistry
    from kestra_trio.service.app import ServiceConfig, open_service
    from kestra_trio.service.registry import load_file, revision_for_run
    from kestra_trio.state.states import State

    max_parallel = resolve_max_parallel(max_parallel)
    kill_grace = resolve_kill_grace(kill_grace)
    close_grace = resolve_close_grace(close_grace)
    registry = PluginRegistry.discover(extra_dirs=plugins or [])
    try:
        loaded = load_file(workflow, registry)
    except WorkflowInvalid as exc:
        for issue in exc.issues:
            _print_err(str(issue))
        count = len(exc.issues)
        # the problems are listed just above: the error line sums up instead of repeating one
        raise WorkflowInvalid(
            exc.issues, f"{workflow}: the workflow is invalid ({count} problem{'s' if count != 1 else ''} above); nothing was run"
        ) from None
    spec = loaded.workflow
    if spec.security != "restricted" and spec.permissions != type(spec.permissions)():
        _print_err(
            f"kestra-trio: warning: {workflow}: `permissions` are enforced only with security: restricted; "
            "this workflow runs trusted, so its plugins are not limited"
        )
    if not spec.enabled:
        raise UsageError(f"{workflow}: workflow {spec.id!r} is disabled (enabled: false); enable it to run it")
    values = coerce_inputs(spec, parse_input_args(inputs or []))
    keep_days = retention_days()
    db_path = resolve_db_path(db)

    # an explicit --db is repeated in the follow hint (absolute: the hint is for another terminal)
    view = _View(spec, as_json=as_json, kill_grace=kill_grace, db_hint=str(Path(db).absolute()) if db else None)
    from kestra_trio.plugin_runtime.sandbox import check_ready, database_files

    # restricted mode that cannot be sandboxed here fails now, before anything is created
    await check_ready(spec, protected=database_files(db_path))
    options = EngineOptions(max_parallel=max_parallel, kill_grace=kill_grace, close_grace=close_grace)
    config = ServiceConfig(db_path, registry, options, retention_days=keep_days)
    async with open_service(config) as service:
        revision = await revision_for_run(service.workflows, loaded)
        with view:
            service.start_soon(view.tick)
            result = await service.run(
                spec, values, workflow_path=str(Path(workflow).resolve()), workflow_revision=revision,
                on_progress=view.on_progress,
            )
    view.finish(result)
    if result.storage_incomplete:
        from kestra_trio.cli.run_view import database_error_line

        _print_err(f"kestra-trio: error: {database_error_line(result)}")
        return int(ExitCode.DATABASE)
    if result.state == State.SUCCESS:
        return int(ExitCode.OK)
    if result.state == State.CANCELLED and result.stop is not None and result.stop.signal is not None:
        import signal

        by_signal = {signal.SIGTERM: ExitCode.TERMINATED, signal.SIGHUP: ExitCode.HANGUP}
        return int(by_signal.get(result.stop.signal, ExitCode.INTERRUPTED))
    return int(ExitCode.FAILURE)


class _View:
    """Live table on a terminal, plain lines when piped, nothing but the result with --json."""

    def __init__(self, workflow, *, as_json: bool, kill_grace: float = 5.0, db_hint: str | None = None) -> None:
        from kestra_trio.cli.console import color_enabled

        self.workflow = workflow
        self.db_hint = db_hint
        self.kill_grace = kill_grace
        self.as_json = as_json
        self.live = None
        self.model = None
        self.dirty = False
        self.tty = (not as_json) and _isatty()
        self.color = color_enabled()

    def __enter__(self) -> _View:
        if self.tty:
            from rich.live import Live

            from kestra_trio.cli.console import stdout_console
            from kestra_trio.cli.run_view import LiveModel, live_table

            self.model = LiveModel.for_workflow(self.workflow)
            self.live = Live(
                live_table(self.model), console=stdout_console(), auto_refresh=False, transient=False
            )
            self.live.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.live is not None:
            self.refresh()
        if self.live is not None:
            try:
                self.live.stop()
            except (OSError, ValueError):
                pass
            self.live = None

    def refresh(self) -> None:
        if self.live is not None and self.model is not None:
            from kestra_trio.cli.run_view import live_table

            self.dirty = False
            rows = max(5, self.live.console.size.height - 6)
            try:
                self.live.update(live_table(self.model, limit=rows), refresh=True)
            except (OSError, ValueError):  # the terminal went away (SIGHUP follows): stop drawing
                self.live = None

    async def tick(self) -> None:
        """Redraw at most 10 times a second: rendering on every event made a 1,000-task run
        on a terminal 10x slower than piped. Running durations move every half second."""
        import trio

        quiet = 0
        while self.live is not None:
            if self.dirty or quiet >= 5:
                self.refresh()
                quiet = 0
            else:
                quiet += 1
            await trio.sleep(0.1)

    def on_progress(self, event) -> None:
        from kestra_trio.cli.run_view import created_line, progress_line

        if event.task_id is None and event.reason in ("STOPPING", "FORCING"):
            self._say_stopping(event)
            return
        if event.task_id is None and event.reason == "CREATED":
            line = created_line(event.execution_id, self.workflow, self.db_hint)
            if self.as_json:
                _print_err(line)
            elif self.live is not None:
                try:
                    self.live.console.print(line)
                except (OSError, ValueError):
                    pass
            else:
                _print_out(line)
            return
        if self.as_json:
            return
        if self.live is not None and self.model is not None:
            self.model.apply(event)
            self.dirty = True
            return
        line = progress_line(event)
        if line:
            _print_out(line)

    def _say_stopping(self, event) -> None:
        """Ctrl+C can take the kill grace period to take effect: say what is happening."""
        from kestra_trio.cli.run_view import indented

        if event.reason == "FORCING":
            line = "Stopping now: running tasks get SIGKILL."
        else:
            line = f"Stopping ({indented(event.message or 'cancelled')}): running tasks get SIGTERM"
            if self.kill_grace > 0:
                line += f", then SIGKILL after {self.kill_grace:g}s; Ctrl+C skips the wait"
            line += "."
        try:
            if self.live is not None:
                self.live.console.print(line, markup=False, highlight=False)
            else:
                _print_err(line)
        except (OSError, ValueError):
            pass

    def finish(self, result) -> None:
        from kestra_trio.cli.run_view import result_json, summary_lines

        if self.as_json:
            _print_out(result_json(result))
            return
        for line in summary_lines(result, self.db_hint):
            _print_out(line)


def _isatty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False
