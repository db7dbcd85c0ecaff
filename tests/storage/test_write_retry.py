"""WriteRetry: wait for a refusing database while the run goes on; a stop's deadline ends the wait."""

from __future__ import annotations

import sqlite3

import pytest
import trio

from kestra_trio.storage.logs import PartialWrite
from kestra_trio.storage.write_retry import WriteRetry, is_write_refused


class Refusing:
    """A write refused (`database or disk is full`) until `until` on the trio clock."""

    def __init__(self, until: float) -> None:
        self.until = until
        self.calls = 0

    async def __call__(self, value: str) -> str:
        self.calls += 1
        if trio.current_time() < self.until:
            raise sqlite3.OperationalError("database or disk is full")
        return value


@pytest.mark.parametrize(
    ("exc", "refused"),
    [
        (sqlite3.OperationalError("database or disk is full"), True),
        (sqlite3.OperationalError("attempt to write a readonly database"), True),
        (sqlite3.DatabaseError("database disk image is malformed"), True),
        (sqlite3.IntegrityError("NOT NULL constraint failed"), False),  # our bug: never waited for
        (sqlite3.ProgrammingError("closed"), False),
        (ValueError("x"), False),
    ],
)
def test_what_counts_as_a_refused_write(exc: BaseException, refused: bool) -> None:
    assert is_write_refused(exc) is refused
    try:
        raise PartialWrite(1, exc) from exc
    except PartialWrite as wrapped:
        assert is_write_refused(wrapped) is refused


async def test_a_refused_write_is_retried_until_it_works_and_the_outage_is_reported_once(autojump_clock) -> None:
    reports: list[str] = []
    writes = WriteRetry(on_error=reports.append)
    write = Refusing(until=trio.current_time() + 120)
    assert await writes.call("state changes", write, "done") == "done"
    assert trio.current_time() >= 120 and write.calls > 10
    assert reports == [
        "cannot write state changes to the database (database or disk is full); waiting for it and retrying: "
        "nothing is dropped (the plugins wait; Ctrl+C stops the run)",
        reports[1],
    ]
    assert reports[1].startswith("database writes work again (after 12") and not writes.failing


async def test_the_give_up_deadline_ends_the_wait_at_once_and_fires_the_hook_once(autojump_clock) -> None:
    given_up: list[float] = []
    writes = WriteRetry(on_error=lambda _: None, on_give_up=lambda: given_up.append(trio.current_time()))
    write = Refusing(until=float("inf"))
    async with trio.open_nursery() as nursery:
        failures: list[str] = []

        async def wait() -> None:
            with pytest.raises(sqlite3.OperationalError) as raised:
                await writes.call("log lines", write, "x")
            failures.append(str(raised.value))

        nursery.start_soon(wait)
        nursery.start_soon(wait)
        await trio.sleep(30)
        assert failures == []  # no deadline yet: both wait
        stop = trio.current_time()
        writes.give_up_at(stop + 4.5)
    assert failures == ["database or disk is full"] * 2
    assert given_up == [pytest.approx(stop + 4.5)]  # a sleeping retry is cut short; the hook runs once
    calls = write.calls
    with pytest.raises(sqlite3.OperationalError):  # past the deadline: one try, no wait
        await writes.call("log lines", write, "x")
    assert write.calls == calls + 1 and trio.current_time() == pytest.approx(stop + 4.5)
    assert writes.failing  # nobody got a write through: the outage is not over


async def test_other_errors_are_not_retried(autojump_clock) -> None:
    writes = WriteRetry()

    async def broken() -> None:
        raise sqlite3.IntegrityError("UNIQUE constraint failed")

    with pytest.raises(sqlite3.IntegrityError):
        await writes.call("state changes", broken)
    assert trio.current_time() == 0 and not writes.failing


async def test_the_outage_ends_when_the_last_waiting_writer_got_through(autojump_clock) -> None:
    reports: list[str] = []
    writes = WriteRetry(on_error=reports.append)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writes.call, "log lines", Refusing(until=10), "a")
        nursery.start_soon(writes.call, "state changes", Refusing(until=20), "b")
        await trio.sleep(15)
        assert len(reports) == 1 and writes.failing  # one writer is still waiting
    assert len(reports) == 2 and "work again" in reports[1] and not writes.failing
