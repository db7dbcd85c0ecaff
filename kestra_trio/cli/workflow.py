"""`kestra-trio workflow …`: the workflow registry — apply files, list, show, history, enable/disable.

Every apply stores the file's text, its sha256 and the next revision number (an unchanged
file stores nothing); every execution records the revision it ran, so `execution inspect`
can say exactly which workflow ran. Heavy imports stay inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

from cyclopts import App, Parameter

from kestra_trio.cli.params import DbPath, WholeNumber
from kestra_trio.errors import ExitCode, KestraTrioError, WorkflowInvalid

workflow_app = App(
    name="workflow",
    backend="trio",
    default_parameter=Parameter(negative=()),
)

JsonFlag = Annotated[bool, Parameter(name="--json", help="Print JSON instead of a table.")]


class WorkflowNotFound(KestraTrioError):
    """no such workflow in the registry; `kestra-trio workflow list` shows them."""

    def __init__(self, workflow_id: str) -> None:
        from kestra_trio.cli.formatting import literal_line

        super().__init__(f"Workflow not found: {literal_line(workflow_id)} (`kestra-trio workflow list` shows the registry)")


async def _known(store, workflow_id: str):
    """The registry row of `workflow_id`; WorkflowNotFound (exit 1) when there is none."""
    current = await store.get(workflow_id)
    if current is None:
        raise WorkflowNotFound(workflow_id)
    return current


def _out(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        pass


def _err(text: str) -> None:
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _print(renderable) -> None:
    from kestra_trio.cli.console import stdout_console

    stdout_console().print(renderable)


def _json(value) -> None:
    from kestra_trio.cli.formatting import dumps_pretty

    _out(dumps_pretty(value) + "\n")


@workflow_app.command
async def apply(paths: list[Path], /, *, plugins: list[Path] | None = None, db: DbPath = None) -> int:
    """Store workflow files in the registry: each changed file becomes its workflow's next revision.

    All or nothing: if any file is invalid, every problem is printed and nothing is stored
    (exit 2). A file whose text is the latest revision's is reported unchanged.

    Parameters
    ----------
    paths
        Workflow YAML files, or folders (their *.yaml / *.yml files, recursively).
    plugins
        Extra plugin directories, so task types and inputs from them are checked too.
    db
        Database file.
    """
    from kestra_trio.cli.render.workflows import applied_line
    from kestra_trio.config import resolve_db_path
    from kestra_trio.errors import UsageError
    from kestra_trio.plugin_runtime.registry import PluginRegistry
    from kestra_trio.service.registry import apply_loaded, load_files, workflow_files
    from kestra_trio.storage.db import open_database
    from kestra_trio.storage.workflows import WorkflowStore

    files = workflow_files(paths)
    if not files:
        raise UsageError(f"no workflow files (*.yaml, *.yml) in {', '.join(str(p) for p in paths)}")
    loaded, problems = load_files(files, PluginRegistry.discover(extra_dirs=plugins or []))
    if problems:
        issues = [line for problem in problems for line in problem.lines]
        for line in issues:
            _err(line)
        count = len(problems)
        raise WorkflowInvalid(
            issues, f"{count} file{'s' if count != 1 else ''} invalid (problems above); nothing was applied"
        )
    async with open_database(resolve_db_path(db)) as database:
        results = await apply_loaded(WorkflowStore(database), loaded)
    for item, applied in zip(loaded, results, strict=True):
        _out(applied_line(str(item.path), applied) + "\n")
    return int(ExitCode.OK)


@workflow_app.command(name="list")
async def list_(*, as_json: JsonFlag = False, db: DbPath = None) -> int:
    """List the workflows in the registry: latest revision, enabled, task count.

    Parameters
    ----------
    as_json
        A JSON array of workflows.
    db
        Database file.
    """
    from kestra_trio.cli.render.workflows import workflow_json, workflow_table
    from kestra_trio.config import resolve_db_path
    from kestra_trio.storage.db import open_database
    from kestra_trio.storage.workflows import WorkflowStore

    async with open_database(resolve_db_path(db), must_exist=True) as database:
        rows = await WorkflowStore(database).list()
    if as_json:
        _json([workflow_json(row) for row in rows])
    elif rows:
        _print(workflow_table(rows))
    if not rows:
        _err("No workflows found (`kestra-trio workflow apply FILE|DIR` adds them)")
    return int(ExitCode.OK)


@workflow_app.command
async def show(
    workflow_id: str, /, *, revision: WholeNumber | None = None, as_json: JsonFlag = False, db: DbPath = None
) -> int:
    """Print a workflow's source exactly as it was applied (the latest revision by default).

    Parameters
    ----------
    workflow_id
        Workflow id.
    revision
        This revision instead of the latest.
    as_json
        One JSON object: revision, sha256, source path, applied at, source.
    db
        Database file.
    """
    from kestra_trio.cli.formatting import literal_line
    from kestra_trio.cli.render.workflows import revision_json
    from kestra_trio.config import resolve_db_path
    from kestra_trio.storage.db import open_database
    from kestra_trio.storage.workflows import WorkflowStore

    async with open_database(resolve_db_path(db), must_exist=True) as database:
        store = WorkflowStore(database)
        current = await _known(store, workflow_id)
        row = await store.revision(workflow_id, revision)
    if row is None:
        _err(
            f"Workflow {literal_line(workflow_id)} has no revision {revision} "
            f"(revisions 1 to {current.revision}; `kestra-trio workflow history {literal_line(workflow_id)}`)"
        )
        return int(ExitCode.FAILURE)
    if as_json:
        _json(revision_json(row))
    else:
        source = row.source or ""
        _out(source if source.endswith("\n") or not source else source + "\n")
    return int(ExitCode.OK)


@workflow_app.command
async def history(workflow_id: str, /, *, as_json: JsonFlag = False, db: DbPath = None) -> int:
    """List every revision of a workflow, oldest first: when, its sha256, where it came from.

    Parameters
    ----------
    workflow_id
        Workflow id.
    as_json
        A JSON array of revisions (without their source; `workflow show --revision N` prints it).
    db
        Database file.
    """
    from kestra_trio.cli.render.workflows import history_table, revision_json
    from kestra_trio.config import resolve_db_path
    from kestra_trio.storage.db import open_database
    from kestra_trio.storage.workflows import WorkflowStore

    async with open_database(resolve_db_path(db), must_exist=True) as database:
        store = WorkflowStore(database)
        current = await _known(store, workflow_id)
        rows = await store.history(workflow_id)
    if as_json:
        _json([revision_json(row) for row in rows])
    else:
        _print(history_table(rows, current.revision))
    return int(ExitCode.OK)


async def _set_enabled(workflow_id: str, enabled: bool, db: str | None) -> int:
    from kestra_trio.cli.formatting import literal_line
    from kestra_trio.config import resolve_db_path
    from kestra_trio.storage.db import open_database
    from kestra_trio.storage.workflows import WorkflowStore

    word = "enabled" if enabled else "disabled"
    async with open_database(resolve_db_path(db), must_exist=True) as database:
        changed = await WorkflowStore(database).set_enabled(workflow_id, enabled)
    if changed is None:
        raise WorkflowNotFound(workflow_id)
    _out(f"Workflow {literal_line(workflow_id)} {word}\n" if changed else f"Workflow {literal_line(workflow_id)} is already {word}\n")
    return int(ExitCode.OK)


@workflow_app.command
async def enable(workflow_id: str, /, *, db: DbPath = None) -> int:
    """Let a workflow run again (`run`, and the server's triggers and API).

    Parameters
    ----------
    workflow_id
        Workflow id.
    db
        Database file.
    """
    return await _set_enabled(workflow_id, True, db)


@workflow_app.command
async def disable(workflow_id: str, /, *, db: DbPath = None) -> int:
    """Stop a workflow from running: `run` refuses it, triggers do not fire. Its history stays.

    Parameters
    ----------
    workflow_id
        Workflow id.
    db
        Database file.
    """
    return await _set_enabled(workflow_id, False, db)
