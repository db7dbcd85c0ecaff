"""The `workflow` commands' output: registry rows → tables, lines and JSON values."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.table import Table  # noqa: TC002 (the return type)
from rich.text import Text

from kestra_trio.cli.formatting import borderless_table, literal, literal_line
from kestra_trio.query.documents import iso_ms, revision_document
from kestra_trio.query.documents import workflow_document as workflow_json  # noqa: F401 (workflow list --json)
from kestra_trio.storage.workflows import Applied, RevisionRow, WorkflowRow


def _when(ms: int) -> str:
    return (iso_ms(ms) or "-").replace("T", " ").removesuffix("Z")


def applied_line(path: str, applied: Applied) -> str:
    """`flows/hello.yaml: hello revision 2 (was 1)` — what one apply did to one file."""
    head = f"{literal_line(path)}: {literal_line(applied.workflow_id)}"
    if not applied.created:
        return f"{head} unchanged (revision {applied.revision})"
    if applied.previous is None:
        return f"{head} revision {applied.revision} (new workflow)"
    return f"{head} revision {applied.revision} (was {applied.previous})"


def workflow_table(rows: Sequence[WorkflowRow]) -> Table:
    table = borderless_table("ID", "NAMESPACE", "REVISION", "ENABLED", "TASKS", "UPDATED (UTC)", wrapping={"UPDATED (UTC)": 10})
    for row in rows:
        table.add_row(
            Text(literal_line(row.id), style="kt.id"),
            Text(literal_line(row.namespace)),
            Text(str(row.revision)),
            Text("yes") if row.enabled else Text("no", style="kt.state.cancelled"),
            Text(str(row.task_count)),
            Text(_when(row.updated_at)),
        )
    return table


def shown_path(path: str | None) -> str:
    """A stored (absolute) source path, relative to the current directory when it is inside it."""
    if not path:
        return "-"
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def history_table(rows: Sequence[RevisionRow], current: int) -> Table:
    table = borderless_table("REVISION", "APPLIED (UTC)", "SHA256", "TASKS", "SOURCE", wrapping={"APPLIED (UTC)": 10, "SOURCE": 12})
    for row in rows:
        revision = Text(str(row.revision))
        if row.revision == current:
            revision.append(" (latest)", style="kt.muted")
        table.add_row(
            revision, Text(_when(row.applied_at)), Text(row.source_hash[:12]), Text(str(row.task_count)),
            Text(literal(shown_path(row.source_path))),
        )
    return table


revision_json = revision_document  # the same document `GET /workflows/{id}/revisions` answers
