"""Cron triggers: fire times (6 fields, macros, DST days), catch-up after a downtime, and the
scheduler loop on trio's autojump clock with a wall clock that follows it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import trio
import trio.testing

from kestra_trio.model.loading import load_workflow_text
from kestra_trio.model.workflow import CronTrigger
from kestra_trio.service.triggers.catalog import ActiveWorkflow
from kestra_trio.service.triggers.cron import (
    CATCH_UP_MAX,
    ON_TIME_MS,
    CronScheduler,
    due_fires,
    next_fire,
    schedule_key,
    scheduled_iso,
)
from kestra_trio.storage.triggers import CronState

PARIS = ZoneInfo("Europe/Paris")


def ms(*parts: int, zone: ZoneInfo = PARIS, fold: int = 0) -> int:
    return int(datetime(*parts, tzinfo=zone).replace(fold=fold).timestamp() * 1000)


def utc(at: int) -> str:
    return datetime.fromtimestamp(at / 1000, ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S")


def cron(expression: str, timezone: str = "Europe/Paris", catch_up: str = "last") -> CronTrigger:
    return CronTrigger(id="t", cron=expression, timezone=timezone, catch_up=catch_up)  # type: ignore[arg-type]


def fires_between(trigger: CronTrigger, start: int, end: int) -> list[int]:
    found, at = [], start
    while (at := next_fire(trigger, at)) <= end:
        found.append(at)
    return found


# ---------------------------------------------------------------- fire times


def test_six_fields_put_seconds_first() -> None:
    start = ms(2026, 1, 5, 10, 0, 0)
    assert [at - start for at in fires_between(cron("*/20 * * * * *"), start, start + 60_000)] == [
        20_000, 40_000, 60_000
    ]


@pytest.mark.parametrize(
    ("macro", "expected_local"),
    [("@hourly", "2026-01-05 11:00"), ("@daily", "2026-01-06 00:00"), ("@weekly", "2026-01-11 00:00"),
     ("@monthly", "2026-02-01 00:00")],
)
def test_macros(macro: str, expected_local: str) -> None:
    at = next_fire(cron(macro), ms(2026, 1, 5, 10, 30))  # a Monday
    assert datetime.fromtimestamp(at / 1000, PARIS).strftime("%Y-%m-%d %H:%M") == expected_local


def test_a_time_skipped_by_spring_forward_fires_once_right_after_the_gap() -> None:
    # Europe/Paris 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day
    day = fires_between(cron("30 2 * * *"), ms(2026, 3, 28, 0), ms(2026, 3, 30, 12))
    assert [utc(at) for at in day] == ["2026-03-28 01:30:00", "2026-03-29 01:00:00", "2026-03-30 00:30:00"]
    assert scheduled_iso(cron("30 2 * * *"), day[1]) == "2026-03-29T03:00:00.000+02:00"


def test_a_time_repeated_by_fall_back_fires_once_for_a_fixed_hour() -> None:
    # Europe/Paris 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice
    day = fires_between(cron("30 2 * * *"), ms(2026, 10, 24, 0), ms(2026, 10, 26, 12))
    assert [utc(at) for at in day] == ["2026-10-24 00:30:00", "2026-10-25 00:30:00", "2026-10-26 01:30:00"]


def test_an_interval_schedule_follows_elapsed_time_through_both_dst_changes() -> None:
    every_30 = cron("*/30 * * * *")
    fall = fires_between(every_30, ms(2026, 10, 25, 1, 45), ms(2026, 10, 25, 3, 15))
    assert [b - a for a, b in zip(fall, fall[1:])] == [30 * 60_000] * (len(fall) - 1)
    assert len(fall) == 5  # 02:00 and 02:30 twice each (CEST, then CET), then 03:00
    spring = fires_between(every_30, ms(2026, 3, 29, 1, 15), ms(2026, 3, 29, 3, 45))
    assert [datetime.fromtimestamp(at / 1000, PARIS).strftime("%H:%M") for at in spring] == [
        "01:30", "03:00", "03:30"
    ]


def test_new_york_daily_job_on_both_dst_days() -> None:
    ny = ZoneInfo("America/New_York")
    spring = fires_between(cron("30 2 * * *", "America/New_York"), ms(2026, 3, 7, 12, zone=ny), ms(2026, 3, 9, 12, zone=ny))
    assert [utc(at) for at in spring] == ["2026-03-08 07:00:00", "2026-03-09 06:30:00"]  # 03:00 EDT, then 02:30 EDT
    # 01:00-01:59 happens twice on 2026-11-01 (EDT, then EST): once, at the first 01:30
    fall = fires_between(cron("30 1 * * *", "America/New_York"), ms(2026, 10, 31, 12, zone=ny), ms(2026, 11, 2, 12, zone=ny))
    assert [utc(at) for at in fall] == ["2026-11-01 05:30:00", "2026-11-02 06:30:00"]


# ---------------------------------------------------------------- what is due


def test_due_fires_on_time_always_fire() -> None:
    now = ms(2026, 1, 5, 10, 0, 3)
    for mode in ("none", "last", "all"):
        assert due_fires(cron("* * * * * *", catch_up=mode), now - 3_000, now) == [now - 2_000, now - 1_000, now]


@pytest.mark.parametrize(("mode", "expected_hours"), [("none", []), ("last", [9]), ("all", [6, 7, 8, 9])])
def test_catch_up_after_a_downtime(mode: str, expected_hours: list[int]) -> None:
    down_since = ms(2026, 1, 5, 5, 30)
    now = ms(2026, 1, 5, 9, 40)
    due = due_fires(cron("0 * * * *", catch_up=mode), down_since, now)
    assert [datetime.fromtimestamp(at / 1000, PARIS).hour for at in due] == expected_hours


def test_catch_up_all_is_bounded_to_the_most_recent_fire_times() -> None:
    now = ms(2026, 1, 5, 10, 0)
    due = due_fires(cron("* * * * * *", catch_up="all"), now - 86_400_000, now)
    assert len(due) == CATCH_UP_MAX + ON_TIME_MS // 1000 + 1
    assert due[-1] == now and due == sorted(set(due))


def test_last_with_an_on_time_fire_does_not_add_a_missed_one() -> None:
    now = ms(2026, 1, 5, 10, 0, 1)  # the 10:00 fire is 1 s old: on time
    assert due_fires(cron("0 * * * *"), ms(2026, 1, 5, 6, 30), now) == [ms(2026, 1, 5, 10, 0)]


# ---------------------------------------------------------------- the loop

WORKFLOW = """
id: nightly
inputs:
  - {{name: who, type: string, default: nobody}}
triggers:
  - id: t
    type: cron
    cron: "{cron}"
    timezone: Europe/Paris
    catch_up: {catch_up}
tasks:
  - {{id: a, type: core/shell.run, inputs: {{command: "true"}}}}
"""


def active(cron_text: str, catch_up: str = "last", revision: int = 1) -> ActiveWorkflow:
    return ActiveWorkflow(revision, load_workflow_text(WORKFLOW.format(cron=cron_text, catch_up=catch_up)))


class Registry:
    """The registry and the database as the scheduler sees them, in memory."""

    def __init__(self, *items: ActiveWorkflow) -> None:
        self.items = list(items)
        self.disabled: list[str] = []
        self.states: dict[tuple[str, str], CronState] = {}
        self.fired: list[tuple[str, int]] = []
        self.keys: set[tuple[str, str, int]] = set()

    async def load(self):
        return [i for i in self.items if i.workflow.id not in self.disabled]

    async def cron_states(self) -> list[CronState]:
        return list(self.states.values())

    async def set_cron_state(self, workflow_id, trigger_id, schedule, handled_to, *, paused=False) -> None:
        old = self.states.get((workflow_id, trigger_id))
        if old is None or handled_to >= old.handled_to or schedule != old.schedule:
            self.states[(workflow_id, trigger_id)] = CronState(workflow_id, trigger_id, schedule, handled_to, paused)

    async def fire(self, item: ActiveWorkflow, trigger: CronTrigger, at: int) -> bool:
        key = (item.workflow.id, trigger.id, at)
        if key in self.keys:  # the primary key of trigger_fires
            return False
        self.keys.add(key)
        self.fired.append((item.workflow.id, at))
        await self.set_cron_state(item.workflow.id, trigger.id, schedule_key(trigger), at)
        return True


class WallClock:
    """Unix time that moves with trio's clock (autojump makes both fast)."""

    def __init__(self, start_ms: int) -> None:
        self.start = start_ms / 1000
        self.origin = trio.current_time()

    def __call__(self) -> float:
        return self.start + (trio.current_time() - self.origin)


def local(at: int) -> str:
    return datetime.fromtimestamp(at / 1000, PARIS).strftime("%m-%d %H:%M%z")


async def run_for(scheduler: CronScheduler, seconds: float) -> None:
    with trio.move_on_after(seconds):
        await scheduler.run()


async def test_the_loop_fires_a_daily_job_through_a_spring_forward_night(autojump_clock: trio.testing.MockClock) -> None:
    registry = Registry(active("30 2 * * *"))
    wall = WallClock(ms(2026, 3, 27, 12))
    scheduler = CronScheduler(registry.load, registry, registry.fire, pytest.fail, wall, refresh_seconds=3600)
    await run_for(scheduler, 4 * 86_400)
    assert [local(at) for _, at in registry.fired] == [
        "03-28 02:30+0100", "03-29 03:00+0200", "03-30 02:30+0200", "03-31 02:30+0200"
    ]


async def test_the_loop_fires_on_time_to_the_millisecond(autojump_clock: trio.testing.MockClock) -> None:
    fired_at: list[tuple[int, int]] = []
    registry = Registry(active("*/15 * * * * *"))
    wall = WallClock(ms(2026, 10, 25, 2, 59, 50, fold=1))

    async def fire(item, trigger, at):
        fired_at.append((at, int(wall() * 1000)))
        return await registry.fire(item, trigger, at)

    scheduler = CronScheduler(registry.load, registry, fire, on_error=pytest.fail, wall=wall)
    await run_for(scheduler, 60)
    assert [at for at, _ in fired_at] == [ms(2026, 10, 25, 3, 0, s) for s in (0, 15, 30, 45)]
    assert all(now == at for at, now in fired_at)  # woken at the scheduled instant, not a poll later


async def test_a_restart_catches_up_the_last_missed_time_then_follows_the_schedule(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry(active("0 * * * *"))
    wall = WallClock(ms(2026, 1, 5, 8, 59, 59))
    first = CronScheduler(registry.load, registry, registry.fire, on_error=pytest.fail, wall=wall)
    await run_for(first, 2)  # fires 09:00, then "the server goes down"
    await trio.sleep(3 * 3600 + 1800)  # down until 12:30
    second = CronScheduler(registry.load, registry, registry.fire, on_error=pytest.fail, wall=wall)
    await run_for(second, 3600)
    assert [local(at)[6:11] for _, at in registry.fired] == ["09:00", "12:00", "13:00"]


async def test_a_second_scheduler_on_the_same_database_fires_nothing_twice(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry(active("*/10 * * * * *"))
    wall = WallClock(ms(2026, 1, 5, 10, 0, 1))
    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(run_for, CronScheduler(registry.load, registry, registry.fire, pytest.fail, wall), 60)
    assert [at for _, at in registry.fired] == [ms(2026, 1, 5, 10, 0, s) for s in (10, 20, 30, 40, 50)] + [
        ms(2026, 1, 5, 10, 1)
    ]


async def test_a_disabled_workflow_does_not_fire_and_resumes_from_its_enable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry(active("0 * * * *", catch_up="all"))
    wall = WallClock(ms(2026, 1, 5, 9, 30))
    # registry changes are seen when poked (as the folder does) — no refresh in between
    scheduler = CronScheduler(registry.load, registry, registry.fire, pytest.fail, wall, refresh_seconds=86_400)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_for, scheduler, 5 * 3600)
        await trio.sleep(3600)  # 10:30: 10:00 fired
        registry.disabled.append("nightly")
        scheduler.poke()
        await trio.sleep(2 * 3600)  # 12:30: 11:00 and 12:00 not fired
        registry.disabled.clear()
        scheduler.poke()
    assert [local(at)[6:11] for _, at in registry.fired] == ["10:00", "13:00", "14:00"]


async def test_a_removed_trigger_put_back_counts_from_then(autojump_clock: trio.testing.MockClock) -> None:
    registry = Registry(active("0 * * * *", catch_up="all"))
    wall = WallClock(ms(2026, 1, 5, 9, 30))
    scheduler = CronScheduler(registry.load, registry, registry.fire, pytest.fail, wall, refresh_seconds=86_400)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_for, scheduler, 5 * 3600)
        await trio.sleep(3600)  # 10:30: 10:00 fired
        kept = registry.items
        registry.items = [ActiveWorkflow(2, load_workflow_text("id: nightly\ntasks: [{id: a, type: core/shell.run}]\n"))]
        scheduler.poke()
        await trio.sleep(2 * 3600)  # 12:30: no trigger, 11:00 and 12:00 not fired
        registry.items = kept
        scheduler.poke()
    assert [local(at)[6:11] for _, at in registry.fired] == ["10:00", "13:00", "14:00"]


async def test_a_changed_schedule_starts_counting_from_the_change(autojump_clock: trio.testing.MockClock) -> None:
    registry = Registry(active("0 * * * *"))
    wall = WallClock(ms(2026, 1, 5, 9, 30))
    # registry changes are seen when poked (as the folder does) — no refresh in between
    scheduler = CronScheduler(registry.load, registry, registry.fire, pytest.fail, wall, refresh_seconds=86_400)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_for, scheduler, 3 * 3600)
        await trio.sleep(3600)  # 10:30
        registry.items = [active("45 * * * *", revision=2)]
        scheduler.poke()
    assert [local(at)[6:11] for _, at in registry.fired] == ["10:00", "10:45", "11:45"]
