"""What restricted mode stores: each task run's sandbox (a JSON column) and the refusals."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from kestra_trio.observability.records import now_ms
from kestra_trio.storage.db import Database
from kestra_trio.storage.rows import _json

#: a runaway plugin may knock on many doors: refusals kept per task run
MAX_REFUSALS_PER_TASK = 1000


@dataclass(frozen=True, slots=True)
class RefusalRow:
    task_id: str
    attempt: int
    at: int
    kind: str
    target: str
    detail: str | None


@dataclass(frozen=True)
class SandboxRows:
    sandboxes: dict[str, dict[str, Any]]  # task id -> stored sandbox description
    refusals: list[RefusalRow]


def _insert(raw: sqlite3.Connection, execution_id: str, task_id: str, attempt: int, kind: str, target: str, detail: str | None, at: int) -> bool:
    count = raw.execute(
        "SELECT COUNT(*) FROM sandbox_refusals WHERE execution_id = ? AND task_id = ?", (execution_id, task_id)
    ).fetchone()[0]
    if count >= MAX_REFUSALS_PER_TASK:
        return False
    raw.execute(
        "INSERT INTO sandbox_refusals (execution_id, task_id, attempt, at, kind, target, detail) VALUES (?,?,?,?,?,?,?)",
        (execution_id, task_id, attempt, at, kind, target, detail),
    )
    return True


async def record_refusal(
    db: Database, execution_id: str, task_id: str, attempt: int, kind: str, target: str, detail: str | None
) -> bool:
    """Store one refusal; False once a task run has MAX_REFUSALS_PER_TASK of them."""
    return await db.write(_insert, execution_id, task_id, attempt, kind, target, detail, now_ms())


def sandbox_rows(raw: sqlite3.Connection, execution_id: str) -> SandboxRows:
    """Read inside a caller's read transaction (one snapshot with the rest of inspect)."""
    sandboxes = {
        str(task_id): _json(text)
        for task_id, text in raw.execute(
            "SELECT task_id, CAST(sandbox AS TEXT) FROM task_runs WHERE execution_id = ? AND sandbox IS NOT NULL",
            (execution_id,),
        )
    }
    refusals = [
        RefusalRow(str(r[0]), int(r[1] or 0), int(r[2] or 0), str(r[3]), str(r[4]), None if r[5] is None else str(r[5]))
        for r in raw.execute(
            "SELECT task_id, CAST(attempt AS INTEGER), CAST(at AS INTEGER), CAST(kind AS TEXT), CAST(target AS TEXT), "
            "CAST(detail AS TEXT) FROM sandbox_refusals WHERE execution_id = ? ORDER BY id",
            (execution_id,),
        )
    ]
    return SandboxRows(sandboxes, refusals)


async def read_sandbox(db: Database, execution_id: str) -> SandboxRows:
    return await db.read(sandbox_rows, execution_id)
