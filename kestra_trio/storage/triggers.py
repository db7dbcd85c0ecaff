"""TriggerStore: what the trigger services keep in the database — fires, cron progress, ends.

A fire (`TriggerFire`) is written by the queue in the transaction that creates its execution
(`SqliteQueue.enqueue(fire=...)`): its primary key (workflow, trigger, fire key) makes a
second attempt — a restart, another server — raise `AlreadyFired` and create nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from kestra_trio.observability.records import now_ms
from kestra_trio.storage.db import Database


class AlreadyFired(Exception):
    """This fire was made before (by this or another process): nothing was created."""


@dataclass(frozen=True, slots=True)
class TriggerFire:
    workflow_id: str
    trigger_id: str
    kind: str  # cron | flow
    fire_key: str  # cron: the scheduled instant (Unix ms); flow: the upstream execution id
    scheduled_at: int | None = None
    upstream_execution_id: str | None = None
    #: cron: the trigger's progress moves to the fire time in the same transaction
    schedule: str | None = None


@dataclass(frozen=True, slots=True)
class CronState:
    workflow_id: str
    trigger_id: str
    schedule: str
    handled_to: int
    paused: bool


@dataclass(frozen=True, slots=True)
class ExecutionEnd:
    id: int
    execution_id: str
    workflow_id: str
    namespace: str
    state: str
    ended_at: int


def _upsert_cron_sync(raw: sqlite3.Connection, workflow_id: str, trigger_id: str, schedule: str, handled_to: int,
                      paused: bool, at: int) -> None:
    # progress only moves forward (two servers may both write it), unless the schedule changed
    guard = "WHERE excluded.handled_to >= cron_state.handled_to OR excluded.schedule != cron_state.schedule"
    raw.execute(
        "INSERT INTO cron_state (workflow_id, trigger_id, schedule, handled_to, paused, updated_at) VALUES (?,?,?,?,?,?) "
        "ON CONFLICT (workflow_id, trigger_id) DO UPDATE SET schedule = excluded.schedule, "
        f"handled_to = excluded.handled_to, paused = excluded.paused, updated_at = excluded.updated_at {guard}",
        (workflow_id, trigger_id, schedule, handled_to, int(paused), at),
    )


def insert_fire_sync(raw: sqlite3.Connection, fire: TriggerFire, execution_id: str, at: int) -> None:
    """Record a fire (raises AlreadyFired if it exists); a cron fire also moves its progress."""
    try:
        raw.execute(
            "INSERT INTO trigger_fires (workflow_id, trigger_id, fire_key, kind, scheduled_at, upstream_execution_id, "
            "execution_id, fired_at) VALUES (?,?,?,?,?,?,?,?)",
            (fire.workflow_id, fire.trigger_id, fire.fire_key, fire.kind, fire.scheduled_at,
             fire.upstream_execution_id, execution_id, at),
        )
    except sqlite3.IntegrityError:
        raise AlreadyFired(f"{fire.workflow_id}/{fire.trigger_id} already fired for {fire.fire_key}") from None
    if fire.schedule is not None and fire.scheduled_at is not None:
        _upsert_cron_sync(raw, fire.workflow_id, fire.trigger_id, fire.schedule, fire.scheduled_at, False, at)


def _cron_states(raw: sqlite3.Connection) -> list[CronState]:
    return [
        CronState(w, t, s, h, bool(p))
        for w, t, s, h, p in raw.execute("SELECT workflow_id, trigger_id, schedule, handled_to, paused FROM cron_state")
    ]


def _ends(raw: sqlite3.Connection, limit: int) -> list[ExecutionEnd]:
    return [
        ExecutionEnd(*row)
        for row in raw.execute(
            "SELECT id, execution_id, workflow_id, namespace, state, ended_at FROM execution_ends ORDER BY id LIMIT ?",
            (limit,),
        )
    ]


def _consume(raw: sqlite3.Connection, ids: Sequence[int]) -> None:
    raw.executemany("DELETE FROM execution_ends WHERE id = ?", [(i,) for i in ids])


def _prune_fires(raw: sqlite3.Connection, before: int) -> int:
    return raw.execute("DELETE FROM trigger_fires WHERE fired_at < ?", (before,)).rowcount


def _fires(raw: sqlite3.Connection, workflow_id: str | None) -> list[tuple]:
    where, params = ("WHERE workflow_id = ?", (workflow_id,)) if workflow_id else ("", ())
    return raw.execute(
        "SELECT workflow_id, trigger_id, kind, fire_key, scheduled_at, upstream_execution_id, execution_id, fired_at "
        f"FROM trigger_fires {where} ORDER BY fired_at, fire_key",
        params,
    ).fetchall()


class TriggerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def cron_states(self) -> list[CronState]:
        return await self.db.run(_cron_states)

    async def set_cron_state(self, workflow_id: str, trigger_id: str, schedule: str, handled_to: int,
                             *, paused: bool = False) -> None:
        """Where a cron trigger stands: fire times up to `handled_to` are fired or skipped."""
        await self.db.write(_upsert_cron_sync, workflow_id, trigger_id, schedule, handled_to, paused, now_ms())

    async def ends(self, limit: int = 100) -> list[ExecutionEnd]:
        """The oldest execution ends not yet consumed by the flow dispatcher."""
        return await self.db.run(_ends, limit)

    async def consume(self, ids: Sequence[int]) -> None:
        if ids:
            await self.db.write(_consume, list(ids))

    async def fires(self, workflow_id: str | None = None) -> list[tuple]:
        return await self.db.run(_fires, workflow_id)

    async def prune_fires(self, before: int) -> int:
        """Forget fires made before `before` (Unix ms). Safe: a fire is only ever tried again
        for a time after its trigger's progress, or for an end not yet consumed — both recent."""
        return await self.db.write(_prune_fires, before)
