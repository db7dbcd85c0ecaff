"""AuditStore: append and list only. The database's triggers refuse UPDATE and DELETE."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from kestra_trio.observability.records import AuditEvent
from kestra_trio.storage.rows import (
    AUDIT_SELECT,
    AuditRow,
)


def insert_audit_sync(raw: sqlite3.Connection, events: Sequence[AuditEvent]) -> None:
    raw.executemany(
        "INSERT INTO execution_audit_events (execution_id, event_type, timestamp, metadata) VALUES (?,?,?,?)",
        [
            (e.execution_id, str(e.event_type), e.timestamp, json.dumps(e.metadata, ensure_ascii=False, default=str))
            for e in events
        ],
    )


def _list(raw: sqlite3.Connection, execution_id: str) -> list[AuditRow]:
    rows = raw.execute(
        f"SELECT {AUDIT_SELECT} FROM execution_audit_events WHERE execution_id = ? ORDER BY timestamp, id",
        (execution_id,),
    ).fetchall()
    return [AuditRow.from_row(r) for r in rows]


class AuditStore:
    def __init__(self, db) -> None:  # db: Database
        self.db = db

    async def append(self, *events: AuditEvent) -> None:
        await self.db.write(insert_audit_sync, events)

    async def list(self, execution_id: str) -> list[AuditRow]:
        return await self.db.run(_list, execution_id)
