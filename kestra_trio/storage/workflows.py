"""WorkflowStore: the workflow registry — one row per workflow, one per applied revision.

An apply stores the YAML text exactly as given, its sha256 and the next revision number; the
same text as the latest revision stores nothing (an unchanged apply is not a revision).
Going back to an older text is a new revision, as in Kestra: history only grows.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from kestra_trio.observability.records import now_ms
from kestra_trio.storage.db import Database
from kestra_trio.storage.rows import typed
from kestra_trio.storage.text import encodable_text


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class WorkflowSource:
    """What `workflow apply` (or `run FILE`) hands the registry: a validated file's text."""

    workflow_id: str
    namespace: str
    source: str
    source_path: str | None
    task_count: int


@dataclass(frozen=True)
class Applied:
    workflow_id: str
    revision: int
    created: bool  # False: the text was the latest revision's, nothing stored
    previous: int | None  # the latest revision before this apply (None: a new workflow)


_WORKFLOW_COLUMNS = "w.id, w.namespace, w.revision, w.enabled, w.created_at, w.updated_at, r.task_count, r.source_path"


@dataclass(frozen=True, slots=True)
class WorkflowRow:
    id: str
    namespace: str
    revision: int
    enabled: bool
    created_at: int
    updated_at: int
    task_count: int
    source_path: str | None

    @classmethod
    def from_row(cls, row: tuple) -> WorkflowRow:
        values = list(row)
        values[3] = bool(values[3])
        return cls(*values)


_REVISION_COLUMNS = "workflow_id, revision, namespace, source_hash, source_path, task_count, applied_at"


@dataclass(frozen=True, slots=True)
class RevisionRow:
    workflow_id: str
    revision: int
    namespace: str
    source_hash: str
    source_path: str | None
    task_count: int
    applied_at: int
    source: str | None = None  # read only when asked (`show`)

    @classmethod
    def from_row(cls, row: tuple) -> RevisionRow:
        return cls(*row)


def _apply(raw: sqlite3.Connection, sources: Sequence[WorkflowSource], at: int) -> list[Applied]:
    results = []
    for item in sources:
        digest = source_hash(item.source)
        current = raw.execute(
            "SELECT w.revision, r.source_hash FROM workflows w JOIN workflow_revisions r "
            "ON r.workflow_id = w.id AND r.revision = w.revision WHERE w.id = ?",
            (item.workflow_id,),
        ).fetchone()
        if current is not None and current[1] == digest:
            results.append(Applied(item.workflow_id, current[0], False, current[0]))
            continue
        revision = 1 if current is None else current[0] + 1
        if current is None:
            raw.execute(
                "INSERT INTO workflows (id, namespace, revision, enabled, created_at, updated_at) VALUES (?,?,?,1,?,?)",
                (item.workflow_id, item.namespace, revision, at, at),
            )
        else:
            raw.execute(
                "UPDATE workflows SET namespace = ?, revision = ?, updated_at = ? WHERE id = ?",
                (item.namespace, revision, at, item.workflow_id),
            )
        raw.execute(
            "INSERT INTO workflow_revisions (workflow_id, revision, namespace, source, source_hash, source_path, "
            "task_count, applied_at) VALUES (?,?,?,?,?,?,?,?)",
            # a file name may be any bytes (undecodable ones arrive as lone surrogates): stored replaced
            (item.workflow_id, revision, item.namespace, item.source, digest,
             None if item.source_path is None else encodable_text(item.source_path), item.task_count, at),
        )
        results.append(Applied(item.workflow_id, revision, True, None if current is None else current[0]))
    return results


_LIST = (
    f"SELECT {typed(_WORKFLOW_COLUMNS, text=frozenset({'w.id'}))} FROM workflows w JOIN workflow_revisions r "
    "ON r.workflow_id = w.id AND r.revision = w.revision"
)


def _list(raw: sqlite3.Connection) -> list[WorkflowRow]:
    return [WorkflowRow.from_row(r) for r in raw.execute(f"{_LIST} ORDER BY w.id")]


def _get(raw: sqlite3.Connection, workflow_id: str) -> WorkflowRow | None:
    row = raw.execute(f"{_LIST} WHERE w.id = ?", (workflow_id,)).fetchone()
    return WorkflowRow.from_row(row) if row else None


def _revision(raw: sqlite3.Connection, workflow_id: str, revision: int | None) -> RevisionRow | None:
    if revision is None:
        found = raw.execute("SELECT revision FROM workflows WHERE id = ?", (workflow_id,)).fetchone()
        if found is None:
            return None
        revision = found[0]
    row = raw.execute(
        f"SELECT {typed(_REVISION_COLUMNS)}, CAST(source AS TEXT) FROM workflow_revisions "
        "WHERE workflow_id = ? AND revision = ?",
        (workflow_id, revision),
    ).fetchone()
    return RevisionRow.from_row(row) if row else None


def _history(raw: sqlite3.Connection, workflow_id: str) -> list[RevisionRow]:
    return [
        RevisionRow.from_row(r)
        for r in raw.execute(
            f"SELECT {typed(_REVISION_COLUMNS)} FROM workflow_revisions WHERE workflow_id = ? ORDER BY revision",
            (workflow_id,),
        )
    ]


def _set_enabled(raw: sqlite3.Connection, workflow_id: str, enabled: bool, at: int) -> bool | None:
    row = raw.execute("SELECT enabled FROM workflows WHERE id = ?", (workflow_id,)).fetchone()
    if row is None:
        return None
    if bool(row[0]) == enabled:
        return False
    # an operator's enable or disable is theirs: the --workflows folder no longer owns it
    raw.execute(
        "UPDATE workflows SET enabled = ?, disabled_by_folder = NULL, updated_at = ? WHERE id = ?",
        (int(enabled), at, workflow_id),
    )
    return True


def _folder_disable(raw: sqlite3.Connection, workflow_id: str, path: str, at: int) -> bool:
    cursor = raw.execute(
        "UPDATE workflows SET enabled = 0, disabled_by_folder = ?, updated_at = ? WHERE id = ? AND enabled = 1",
        (path, at, workflow_id),
    )
    return cursor.rowcount > 0


def _folder_enable(raw: sqlite3.Connection, workflow_id: str, at: int) -> bool:
    cursor = raw.execute(
        "UPDATE workflows SET enabled = 1, disabled_by_folder = NULL, updated_at = ? "
        "WHERE id = ? AND disabled_by_folder IS NOT NULL",
        (at, workflow_id),
    )
    return cursor.rowcount > 0


def _folder_disabled(raw: sqlite3.Connection) -> dict[str, str]:
    return dict(raw.execute("SELECT id, disabled_by_folder FROM workflows WHERE disabled_by_folder IS NOT NULL"))


class WorkflowStore:
    """The registry's door: apply, list, get, revisions, history, enable/disable."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def apply(self, sources: Sequence[WorkflowSource]) -> list[Applied]:
        """Store every changed source as its workflow's next revision, all in one transaction."""
        return await self.db.write(_apply, list(sources), now_ms())

    async def list(self) -> list[WorkflowRow]:
        return await self.db.run(_list)

    async def get(self, workflow_id: str) -> WorkflowRow | None:
        return await self.db.run(_get, workflow_id)

    async def revision(self, workflow_id: str, revision: int | None = None) -> RevisionRow | None:
        """One revision with its source (the latest when `revision` is None)."""
        return await self.db.run(_revision, workflow_id, revision)

    async def history(self, workflow_id: str) -> list[RevisionRow]:
        return await self.db.run(_history, workflow_id)

    async def set_enabled(self, workflow_id: str, enabled: bool) -> bool | None:
        """True if it changed, False if it already was, None if there is no such workflow."""
        return await self.db.write(_set_enabled, workflow_id, enabled, now_ms())

    async def folder_disable(self, workflow_id: str, path: str) -> bool:
        """A server's --workflows folder lost the file `path` of this workflow: disable it
        (True if it was enabled). A later file with the same id enables it again."""
        return await self.db.write(_folder_disable, workflow_id, path, now_ms())

    async def folder_enable(self, workflow_id: str) -> bool:
        """Enable a workflow the folder disabled (an operator's disable stays)."""
        return await self.db.write(_folder_enable, workflow_id, now_ms())

    async def folder_disabled(self) -> dict[str, str]:
        """id → removed file path, of the workflows the folder disabled."""
        return await self.db.run(_folder_disabled)
