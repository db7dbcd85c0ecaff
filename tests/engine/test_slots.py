"""TaskSlots: first come first served, a resuming task goes first, nothing leaks on cancel."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from kestra_trio.engine.slots import TaskSlots


async def test_waiters_are_served_in_order_and_resumers_first(autojump_clock: trio.testing.MockClock) -> None:
    slots = TaskSlots(1)
    order: list[str] = []

    async def task(name: str, *, resuming: bool = False, hold: float = 1.0) -> None:
        await slots.acquire(resuming=resuming)
        order.append(name)
        await trio.sleep(hold)
        slots.release()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(task, "first")
        await trio.testing.wait_all_tasks_blocked()
        for name in ("a", "b"):
            nursery.start_soon(task, name)
            await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(lambda: task("resumed", resuming=True))
        await trio.testing.wait_all_tasks_blocked()
        assert slots.statistics().waiting_to_start == 2 and slots.statistics().waiting_to_resume == 1
    assert order == ["first", "resumed", "a", "b"]
    assert slots.statistics().running == 0


async def test_a_cancelled_waiter_holds_nothing(autojump_clock: trio.testing.MockClock) -> None:
    slots = TaskSlots(1)
    await slots.acquire()
    with trio.move_on_after(5):
        await slots.acquire()
    assert slots.statistics().waiting_to_start == 0
    slots.release()
    assert slots.statistics().running == 0
    await slots.acquire()  # the slot is free again
    assert slots.statistics().running == 1


async def test_free_slots_are_taken_at_once_up_to_the_total() -> None:
    slots = TaskSlots(3)
    for _ in range(3):
        await slots.acquire()
    assert slots.statistics().running == 3
    with pytest.raises(RuntimeError):
        TaskSlots(1).release()
    with pytest.raises(ValueError):
        TaskSlots(0)
