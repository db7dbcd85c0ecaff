"""Applying workflow files to the registry: `workflow apply`, `run FILE` and (next) a server's
`--workflows DIR` all go through here, so a file is validated, hashed and numbered one way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kestra_trio.errors import UsageError, WorkflowError, WorkflowInvalid
from kestra_trio.model.catalog import ActionCatalog
from kestra_trio.model.loading import load_workflow_text, read_workflow_file
from kestra_trio.model.workflow import Workflow
from kestra_trio.storage.workflows import Applied, WorkflowSource, WorkflowStore

#: what a directory given to `workflow apply` contributes
WORKFLOW_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedFile:
    path: Path
    workflow: Workflow
    source: WorkflowSource


@dataclass(frozen=True)
class FileProblem:
    path: Path
    lines: tuple[str, ...]  # the validator's messages, one per problem


def workflow_files(paths: Iterable[Path]) -> list[Path]:
    """Files as given; for a directory, its *.yaml / *.yml files (recursively, sorted, hidden skipped)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    p for p in path.rglob("*")
                    if p.suffix in WORKFLOW_SUFFIXES and p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                )
            )
        else:
            found.append(path)
    return found


def load_file(path: Path, catalog: ActionCatalog | None) -> LoadedFile:
    """Read and validate one file; raises WorkflowError / WorkflowInvalid as `validate` reports them."""
    text = read_workflow_file(path)
    workflow = load_workflow_text(text, str(path), catalog=catalog, source_path=str(path))
    source = WorkflowSource(
        workflow_id=workflow.id, namespace=workflow.namespace, source=text,
        source_path=str(path.resolve()), task_count=len(workflow.tasks),
    )
    return LoadedFile(path, workflow, source)


def load_files(paths: Sequence[Path], catalog: ActionCatalog | None) -> tuple[list[LoadedFile], list[FileProblem]]:
    """Every file loaded, or the problems of those that are not valid (and of duplicate ids)."""
    loaded: list[LoadedFile] = []
    problems: list[FileProblem] = []
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            item = load_file(path, catalog)
        except WorkflowInvalid as exc:
            problems.append(FileProblem(path, tuple(str(issue) for issue in exc.issues)))
            continue
        except WorkflowError as exc:
            problems.append(FileProblem(path, (str(exc),)))
            continue
        first = seen.setdefault(item.workflow.id, path)
        if first != path:
            problems.append(FileProblem(path, (f"{path}: workflow id {item.workflow.id!r} is also defined in {first}",)))
            continue
        loaded.append(item)
    return loaded, problems


async def apply_loaded(store: WorkflowStore, loaded: Sequence[LoadedFile]) -> list[Applied]:
    """Store every changed file as a new revision, in one transaction."""
    return await store.apply([item.source for item in loaded])


async def revision_for_run(store: WorkflowStore, loaded: LoadedFile) -> int:
    """`run FILE`: the file's revision (applied now if its text changed); a workflow disabled in
    the registry is refused, as a trigger or the API would refuse it."""
    current = await store.get(loaded.workflow.id)
    if current is not None and not current.enabled:
        raise UsageError(
            f"{loaded.path}: workflow {loaded.workflow.id!r} is disabled in the registry; "
            f"`kestra-trio workflow enable {loaded.workflow.id}` to run it"
        )
    [applied] = await store.apply([loaded.source])
    return applied.revision
