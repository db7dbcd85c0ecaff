"""The audit trail is append-only, enforced by the database's own triggers."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kestra_trio.observability.records import AuditEvent, AuditEventType
from kestra_trio.retention.policy import DAY_MS
from kestra_trio.retention.purge import cleanup
from kestra_trio.storage.audit import AuditStore
from kestra_trio.storage.db import Database, open_database

NOW = 1_800_000_000_000
OLD = NOW - 40 * DAY_MS


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with open_database(tmp_path / "k.db") as database:
        yield database


async def seed(db: Database) -> None:
    def write(raw: sqlite3.Connection) -> None:
        raw.execute(
            "INSERT INTO executions (id, workflow_id, state, created_at, updated_at) "
            "VALUES ('ex-1', 'wf', 'SUCCESS', ?, ?)",
            (OLD, OLD),
        )

    await db.write(write)
    await AuditStore(db).append(
        AuditEvent("ex-1", AuditEventType.CREATED, {"workflow_id": "wf"}, OLD),
        AuditEvent("ex-1", AuditEventType.STARTED, {}, OLD + 1),
        AuditEvent("ex-1", AuditEventType.COMPLETED, {"duration": 1}, NOW - 1000),
    )


def count(raw: sqlite3.Connection) -> int:
    return raw.execute("SELECT COUNT(*) FROM execution_audit_events").fetchone()[0]


async def test_update_is_rejected(db: Database) -> None:
    await seed(db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await db.write(lambda raw: raw.execute("UPDATE execution_audit_events SET event_type = 'FORGED'"))
    assert {e.event_type for e in await AuditStore(db).list("ex-1")} == {"CREATED", "STARTED", "COMPLETED"}


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM execution_audit_events",
        "DELETE FROM execution_audit_events WHERE event_type = 'COMPLETED'",
        # even an expired row may not be deleted outside a retention transaction
        "DELETE FROM execution_audit_events WHERE event_type = 'CREATED'",
    ],
)
async def test_delete_is_rejected(db: Database, statement: str) -> None:
    await seed(db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await db.write(lambda raw: raw.execute(statement))
    assert await db.run(count) == 3


async def test_delete_stays_rejected_after_a_cleanup(db: Database) -> None:
    await seed(db)
    await cleanup(db, retention_days=30, now_ms=NOW)
    assert await db.run(lambda raw: raw.execute("SELECT audit_cutoff FROM retention_state").fetchone()[0]) == 0
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await db.write(lambda raw: raw.execute("DELETE FROM execution_audit_events"))


async def test_retention_deletes_only_expired_rows(db: Database) -> None:
    await seed(db)
    report = await cleanup(db, retention_days=30, now_ms=NOW)
    assert report.audit_deleted == 2
    assert [e.event_type for e in await AuditStore(db).list("ex-1")] == ["COMPLETED"]


async def test_retention_cutoff_lets_through_only_rows_below_it(db: Database) -> None:
    await seed(db)

    def delete_with_cutoff(raw: sqlite3.Connection) -> None:
        # what retention does: open the trigger up to a cutoff within one transaction
        raw.execute("UPDATE retention_state SET audit_cutoff = ? WHERE id = 1", (OLD + 1,))
        raw.execute("DELETE FROM execution_audit_events WHERE timestamp < ?", (OLD + 1,))
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("DELETE FROM execution_audit_events WHERE timestamp = ?", (OLD + 1,))
        raw.execute("UPDATE retention_state SET audit_cutoff = 0 WHERE id = 1")

    await db.write(delete_with_cutoff)
    assert [e.event_type for e in await AuditStore(db).list("ex-1")] == ["STARTED", "COMPLETED"]


async def test_audit_rows_outlive_their_execution(db: Database) -> None:
    await seed(db)
    await db.write(lambda raw: raw.execute("DELETE FROM executions"))
    assert await db.run(lambda raw: raw.execute("SELECT COUNT(*) FROM executions").fetchone()[0]) == 0
    assert len(await AuditStore(db).list("ex-1")) == 3
