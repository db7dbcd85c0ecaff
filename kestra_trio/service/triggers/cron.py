"""Cron triggers: which fire times are due, and the loop that fires them.

Fire times come from cronsim (5 fields, or 6 with seconds first; @hourly … are expanded by
the model) evaluated in the trigger's IANA time zone. cronsim follows Debian cron's rule on
DST days, which is the rule we document:

- a local time skipped by a spring-forward gap fires once, at the first instant after the gap
  (`30 2 * * *` in Europe/Paris on the last Sunday of March fires at 03:00 CEST);
- a local time repeated by a fall-back fires once, at its first occurrence, for a schedule with
  a fixed hour (`30 2 * * *` fires at 02:30 CEST, not again at 02:30 CET); a schedule that runs
  every hour or more often (`*/30 * * * *`) fires in both occurrences, as elapsed time says.

A trigger's progress (`handled_to`: every fire time up to it is fired or skipped) lives in the
database. A fire time at most `ON_TIME_MS` old is on time and always fires; older ones were
missed (the server was down or stopped) and `catch_up` decides: `none` fires none of them,
`last` the most recent one, `all` every one — the `CATCH_UP_MAX` most recent at most.
A new trigger, a changed schedule, a re-enabled workflow or trigger starts counting from now.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import trio
from cronsim import CronSim

from kestra_trio.model.workflow import CronTrigger
from kestra_trio.service.triggers.catalog import ActiveWorkflow
from kestra_trio.storage.triggers import CronState

#: a fire time at most this old when the loop sees it is on time (fired whatever catch_up says)
ON_TIME_MS = 5_000
#: catch_up: all fires at most this many missed fire times (the most recent ones)
CATCH_UP_MAX = 100
#: how often the loop looks at the registry (new, changed, disabled workflows) when nothing is due
REFRESH_SECONDS = 5.0


def schedule_key(trigger: CronTrigger) -> str:
    """What identifies a schedule: a change of either part restarts its counting."""
    return f"{trigger.expression} {trigger.timezone}"


def _local(ms: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ms / 1000, zone)


def next_fire(trigger: CronTrigger, after_ms: int) -> int:
    """The first fire time strictly after `after_ms` (Unix ms)."""
    zone = ZoneInfo(trigger.timezone)
    return int(next(CronSim(trigger.expression, _local(after_ms, zone))).timestamp() * 1000)


def due_fires(trigger: CronTrigger, handled_to: int, now: int) -> list[int]:
    """Fire times in (handled_to, now] that should fire now, oldest first (see the module doc)."""
    zone = ZoneInfo(trigger.timezone)
    on_time: list[int] = []
    missed: list[int] = []
    limit = 1 if trigger.catch_up == "last" else CATCH_UP_MAX if trigger.catch_up == "all" else 0
    # (reverse iteration yields times strictly before its start: start just after `now`)
    for moment in CronSim(trigger.expression, _local(now + 1, zone), reverse=True):
        at = int(moment.timestamp() * 1000)
        if at <= handled_to:
            break
        if now - at <= ON_TIME_MS:
            on_time.append(at)
        elif len(missed) < limit and not (trigger.catch_up == "last" and on_time):
            missed.append(at)
        else:
            break
    return sorted(missed + on_time)


def scheduled_iso(trigger: CronTrigger, at: int) -> str:
    """`{{ trigger.scheduled_at }}`: ISO 8601 in the trigger's time zone, with its offset."""
    return _local(at, ZoneInfo(trigger.timezone)).isoformat(timespec="milliseconds")


class CronStates(Protocol):
    async def cron_states(self) -> list[CronState]: ...

    async def set_cron_state(self, workflow_id: str, trigger_id: str, schedule: str, handled_to: int,
                             *, paused: bool = False) -> None: ...


@dataclass
class CronScheduler:
    """Fires the cron triggers of the enabled workflows at their times.

    `fire(active, trigger, at)` creates the execution and records the fire (and the trigger's
    progress) in one transaction; it returns False when the fire was already made elsewhere.
    `wall()` is the wall clock in Unix seconds (a test gives one that follows trio's clock).
    """

    load: Callable[[], Awaitable[Sequence[ActiveWorkflow]]]
    states: CronStates
    fire: Callable[[ActiveWorkflow, CronTrigger, int], Awaitable[bool]]
    on_error: Callable[[str], None]
    wall: Callable[[], float] = time.time
    refresh_seconds: float = REFRESH_SECONDS

    def __post_init__(self) -> None:
        self.wake = trio.Event()

    def poke(self) -> None:
        """The registry changed (a folder apply): look now."""
        self.wake.set()

    def now_ms(self) -> int:
        return int(self.wall() * 1000)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            try:
                next_at = await self.tick()
            except Exception as exc:  # a locked or broken database must not stop the schedule
                self.on_error(f"cron triggers: {exc}")
                next_at = None
            delay = self.refresh_seconds
            if next_at is not None:
                delay = min(delay, max(0.0, (next_at - self.now_ms()) / 1000))
            with trio.move_on_after(delay):
                await self.wake.wait()
            self.wake = trio.Event()

    async def tick(self) -> int | None:
        """Fire what is due; returns the next fire time of any trigger (Unix ms) or None."""
        active = await self.load()
        states = {(s.workflow_id, s.trigger_id): s for s in await self.states.cron_states()}
        now = self.now_ms()
        upcoming: list[int] = []
        live: set[tuple[str, str]] = set()
        for item in active:
            for trigger in item.workflow.triggers:
                if not isinstance(trigger, CronTrigger) or not trigger.enabled:
                    continue
                live.add((item.workflow.id, trigger.id))
                key = schedule_key(trigger)
                state = states.get((item.workflow.id, trigger.id))
                if state is None or state.schedule != key or state.paused:
                    await self.states.set_cron_state(item.workflow.id, trigger.id, key, now)
                    handled_to = now
                else:
                    handled_to = state.handled_to
                due = due_fires(trigger, handled_to, now)
                for at in due:
                    await self.fire(item, trigger, at)  # (moves handled_to to `at` with the fire)
                handled = max(handled_to, due[-1] if due else handled_to)
                if next_fire(trigger, handled) <= now - ON_TIME_MS:  # missed times catch_up skipped
                    await self.states.set_cron_state(item.workflow.id, trigger.id, key, now - ON_TIME_MS)
                upcoming.append(next_fire(trigger, max(now, handled)))
        # a disabled workflow, a removed or disabled trigger: when it is back, it counts from then
        for key, state in states.items():
            if key not in live and not state.paused:
                await self.states.set_cron_state(state.workflow_id, state.trigger_id, state.schedule,
                                                 state.handled_to, paused=True)
        return min(upcoming) if upcoming else None
