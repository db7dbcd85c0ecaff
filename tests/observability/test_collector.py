"""LogCollector timing and failure behaviour, with a fake sink and the autojump clock."""

from __future__ import annotations

import copy
import math
import sqlite3

import pytest
import trio

from kestra_trio.observability.collector import OVERFLOW_MESSAGE, LogCollector
from kestra_trio.observability.records import LogEntry, LogLevel, LostEntries
from kestra_trio.storage.write_retry import WriteRetry
from kestra_trio.secrets.masking import MASK, Masker


class FakeSink:
    def __init__(self, *, delay: float = 0.0, failures: int = 0) -> None:
        self.batches: list[tuple[float, list[LogEntry]]] = []
        self.lost: list[LostEntries] = []
        self.delay = delay
        self.failures = failures

    async def insert_batch(self, entries):
        if self.delay:
            await trio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        self.batches.append((trio.current_time(), list(entries)))

    async def record_lost(self, lost, entries):
        if self.failures:
            raise sqlite3.OperationalError("database is locked")
        self.lost.extend(copy.copy(item) for item in lost)
        self.batches.append((trio.current_time(), [item.gap_entry() for item in lost] + list(entries)))

    @property
    def messages(self) -> list[str]:
        return [e.message for _, batch in self.batches for e in batch]


def entry(i: int, execution_id: str = "e1") -> LogEntry:
    return LogEntry(execution_id, "t", LogLevel.INFO, "worker", f"line {i}")


async def test_strict_mode_writes_a_partial_batch_one_second_after_the_oldest_entry(autojump_clock):
    sink = FakeSink()
    collector = LogCollector(sink, linger=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        start = trio.current_time()
        with collector.sender() as send:
            for i in range(50):
                await send.send(entry(i))
            await trio.sleep(0.5)
            assert sink.batches == []  # neither 100 entries nor 1 s yet
            await trio.sleep(0.6)
            assert len(sink.batches) == 1
            written_at, batch = sink.batches[0]
            assert written_at - start == pytest.approx(1.0, abs=0.01)
            assert len(batch) == 50
        collector.close()


async def test_a_full_batch_of_100_is_written_at_once(autojump_clock):
    sink = FakeSink()
    collector = LogCollector(sink, linger=None, buffer_size=1000)
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        start = trio.current_time()
        with collector.sender() as send:
            for i in range(250):
                send.send_nowait(entry(i))
            await trio.sleep(0.01)
            sizes = [len(b) for _, b in sink.batches]
            assert sum(sizes) >= 200 and all(s >= 100 for s in sizes)
            assert all(t - start < 0.01 for t, _ in sink.batches)
        collector.close()
    assert sink.messages == [f"line {i}" for i in range(250)]


async def test_dry_channel_flushes_after_the_linger(autojump_clock):
    sink = FakeSink()
    collector = LogCollector(sink, linger=0.02)
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        start = trio.current_time()
        with collector.sender() as send:
            await send.send(entry(1))
            await trio.sleep(0.1)
            assert [t - start for t, _ in sink.batches] == [pytest.approx(0.02, abs=0.005)]
        collector.close()


async def test_flush_is_a_barrier_for_everything_sent_before_it(autojump_clock):
    sink = FakeSink(delay=0.05)
    collector = LogCollector(sink, linger=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        with collector.sender() as send:
            for i in range(7):
                await send.send(entry(i))
            await collector.flush()
            assert sink.messages == [f"line {i}" for i in range(7)]
        collector.close()


async def test_closing_every_producer_drains_everything(autojump_clock):
    sink = FakeSink()
    collector = LogCollector(sink, linger=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        with collector.sender() as send:
            for i in range(42):
                await send.send(entry(i))
        collector.close()
    assert sink.messages == [f"line {i}" for i in range(42)]


async def test_cancelling_the_flusher_still_writes_what_was_buffered(autojump_clock):
    sink = FakeSink()
    collector = LogCollector(sink, linger=None)
    send = collector.sender()
    with trio.move_on_after(0.5):
        async with trio.open_nursery() as nursery:
            await nursery.start(collector.run)
            for i in range(30):
                await send.send(entry(i))
            await trio.sleep_forever()
    assert sink.messages == [f"line {i}" for i in range(30)]


async def test_database_failure_is_retried_without_loss_and_reported_once(autojump_clock):
    sink = FakeSink(failures=3)
    errors: list[str] = []
    collector = LogCollector(sink, linger=None, on_error=errors.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        with collector.sender() as send:
            for i in range(150):
                await send.send(entry(i))
            await collector.flush()
        collector.close()
    assert sink.messages == [f"line {i}" for i in range(150)]
    assert len([e for e in errors if "cannot write log lines" in e]) == 1
    assert len([e for e in errors if "work again" in e]) == 1
    assert collector.statistics().write_failures == 3
    assert collector.statistics().lost == 0


async def test_failure_that_outlasts_the_run_is_counted_and_reported(autojump_clock):
    sink = FakeSink(failures=10**9)
    errors: list[str] = []
    collector = LogCollector(sink, linger=None, on_error=errors.append, close_grace=2.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        with collector.sender() as send:
            for i in range(5):
                await send.send(entry(i))
        collector.close()
    assert collector.statistics().lost == collector.statistics().lost_unrecorded == 5
    assert any("5 log entries could not be written" in e for e in errors)


async def test_flush_waits_for_a_failing_database_until_the_give_up_deadline(autojump_clock):
    # while the run goes on a flush waits (back-pressure); a stop gives the wait a deadline,
    # and a shielded stop path then gets its answer at that deadline, not later
    sink = FakeSink(failures=10**9)
    errors: list[str] = []
    writes = WriteRetry(on_error=errors.append)
    collector = LogCollector(sink, linger=None, on_error=errors.append, writes=writes)
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        with collector.sender() as send:
            await send.send(entry(0))
            answers: list[bool] = []

            async def flush() -> None:
                with trio.CancelScope(shield=True):
                    answers.append(await collector.flush())

            nursery.start_soon(flush)
            await trio.sleep(600)
            assert answers == [] and collector.statistics().lost == 0  # still waiting, nothing dropped
            stop_at = trio.current_time()
            writes.give_up_at(stop_at + 3.0)
            while not answers:
                await trio.sleep(0.01)
            assert 3.0 <= trio.current_time() - stop_at < 3.1  # a 2 s backoff sleep was cut short
            assert answers == [False]  # the database took nothing, not even the loss record
        collector.close()
    assert collector.statistics().lost == collector.statistics().lost_unrecorded == 1  # counted, reported
    assert any("1 log entries could not be written" in e for e in errors)


async def test_a_slow_but_working_database_is_waited_for(autojump_clock):
    sink = FakeSink(delay=20.0)  # slower than close_grace, yet not failing
    collector = LogCollector(sink, linger=None, close_grace=3.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        with collector.sender() as send:
            await send.send(entry(0))
            await collector.flush()
            assert sink.messages == ["line 0"]
        collector.close()


async def test_overflow_records_one_warning_per_episode(autojump_clock):
    sink = FakeSink(delay=0.01)
    collector = LogCollector(sink, linger=None, buffer_size=50)
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        with collector.sender() as send:
            for i in range(500):  # producers far faster than the sink
                await send.send(entry(i))
            await collector.flush()
        collector.close()
    warnings = [m for m in sink.messages if m == OVERFLOW_MESSAGE]
    assert 1 <= len(warnings) == collector.statistics().overflow_episodes
    assert [m for m in sink.messages if m != OVERFLOW_MESSAGE] == [f"line {i}" for i in range(500)]


async def test_entries_are_masked_before_they_are_written(autojump_clock):
    sink = FakeSink()
    collector = LogCollector(sink, linger=None)
    collector.set_masker("e1", Masker(["hunter2-secret"]))
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        with collector.sender() as send:
            await send.send(
                LogEntry("e1", "t", LogLevel.INFO, "worker", "token=hunter2-secret", {"k": "hunter2-secret"})
            )
            await send.send(LogEntry("e2", "t", LogLevel.INFO, "worker", "other execution keeps hunter2-secret"))
        collector.close()
    first, second = sink.batches[0][1]
    assert first.message == f"token={MASK}" and first.metadata == {"k": MASK}
    assert second.message.endswith("hunter2-secret")


async def test_lists_of_entries_count_as_entries_and_keep_their_order(autojump_clock):
    sink = FakeSink()
    collector = LogCollector(sink, linger=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        with collector.sender() as send:
            await send.send([entry(i) for i in range(60)])
            await send.send(entry(60))
            await send.send([entry(i) for i in range(61, 130)])
            await trio.sleep(0.001)
            assert sum(len(b) for _, b in sink.batches) == 130  # >= 100 buffered: written at once
        collector.close()
    assert sink.messages == [f"line {i}" for i in range(130)]
    assert collector.statistics().received == 130


async def test_sustained_pressure_is_one_episode(autojump_clock):
    sink = FakeSink(delay=0.01)
    collector = LogCollector(sink, linger=None, buffer_size=20, calm_period=5.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        with collector.sender() as send:
            for burst in range(3):  # three bursts within the calm period
                for i in range(200):
                    await send.send(entry(i))
                await trio.sleep(0.5)
            await collector.flush()
        collector.close()
    assert collector.statistics().overflow_episodes == 1
    assert sink.messages.count(OVERFLOW_MESSAGE) == 1


class ManyBatchSink(FakeSink):
    """Writes several transactions per call; the first call fails after one committed batch."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def insert_batches(self, batches):
        self.calls += 1
        if self.calls == 1:
            self.batches.append((trio.current_time(), list(batches[0])))
            error = sqlite3.OperationalError("disk I/O error")
            error.committed = 1
            raise error
        for batch in batches:
            self.batches.append((trio.current_time(), list(batch)))
        return len(batches)


async def test_partial_multi_batch_failure_requeues_only_uncommitted_batches(autojump_clock):
    sink = ManyBatchSink()
    collector = LogCollector(sink, linger=None, batch_size=100, max_batch=100, buffer_size=1000, on_error=lambda _: None)
    async with trio.open_nursery() as nursery:
        with collector.sender() as send:
            for i in range(450):
                send.send_nowait(entry(i))
            await nursery.start(collector.run)  # 450 queued: 5 transactions in one hop
            await collector.flush()
        collector.close()
    assert sink.messages == [f"line {i}" for i in range(450)]  # nothing twice, nothing lost
    assert collector.statistics().flushed == 450
    assert all(len(batch) <= 100 for _, batch in sink.batches)


# -- the database refuses writes: back-pressure, then (after a stop's deadline) counted loss --


class OutageSink(FakeSink):
    """Refuses every batch (as a full disk does) until `until` on the trio clock.
    `records_fit`: the small loss records still fit (a disk with room for a few rows)."""

    def __init__(self, until: float, *, records_fit: bool = False) -> None:
        super().__init__()
        self.until = until
        self.records_fit = records_fit

    async def insert_batch(self, entries):
        if trio.current_time() < self.until:
            raise sqlite3.OperationalError("database or disk is full")
        await super().insert_batch(entries)

    async def record_lost(self, lost, entries):
        if not self.records_fit and trio.current_time() < self.until:
            raise sqlite3.OperationalError("database or disk is full")
        await super().record_lost(lost, entries)


def plugin_line(task_id: str, i: int, at: int = 0) -> LogEntry:
    return LogEntry("e1", task_id, LogLevel.INFO, "plugin:core/shell.run", f"{task_id} line {i}", {}, at or 1000 + i)


async def test_while_the_database_refuses_writes_producers_wait_and_nothing_is_lost(autojump_clock):
    outage_end = trio.current_time() + 30.0
    sink = OutageSink(until=outage_end)
    errors: list[str] = []
    collector = LogCollector(sink, linger=None, max_unwritten=500, on_error=errors.append)
    sent = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)

        async def produce() -> None:
            nonlocal sent
            with collector.sender() as send:
                for start in range(0, 5000, 100):
                    await send.send([entry(i) for i in range(start, start + 100)])
                    sent = start + 100

        nursery.start_soon(produce)
        await trio.sleep(20)  # in the middle of the outage
        stats = collector.statistics()
        # the reader waits (so a plugin would block on its pipe); memory holds the bound
        assert stats.waiting_senders == 1 and sent == stats.unwritten == 500
        assert stats.lost == 0 and sink.batches == []
        await trio.sleep(20)
        collector.close()
    assert sink.messages == [f"line {i}" for i in range(5000)]  # every line, in order
    assert min(t for t, _ in sink.batches) >= outage_end
    assert collector.statistics().lost == 0 and collector.statistics().unwritten == 0
    assert len([e for e in errors if "cannot write log lines" in e and "database or disk is full" in e]) == 1
    assert len([e for e in errors if "work again" in e]) == 1


async def test_engine_lines_never_wait_for_room_plugin_lines_do(autojump_clock):
    sink = FakeSink()
    collector = LogCollector(sink, linger=None, max_unwritten=10)
    with collector.sender() as send:
        send.send_always([entry(i) for i in range(10)])  # the bound is reached
        with pytest.raises(trio.WouldBlock):
            send.send_nowait(entry(10))
        send.send_always(entry(11))  # an engine line: past the bound, at once
        with trio.move_on_after(1) as scope:
            await send.send(entry(12))
        assert scope.cancelled_caught  # a plugin's line waits (and is not sent when cancelled)
        async with trio.open_nursery() as nursery:
            await nursery.start(collector.run)
            await send.send(entry(13))  # room again once the flusher writes
            collector.close()
            send.close()
    assert sink.messages == [f"line {i}" for i in [*range(10), 11, 13]]


async def test_after_the_deadline_plugin_lines_are_counted_per_task_and_the_gap_is_recorded(autojump_clock):
    # a full disk with room for a few rows: batches are refused, the small loss record fits
    sink = OutageSink(until=math.inf, records_fit=True)
    errors: list[str] = []
    writes = WriteRetry(on_error=errors.append)
    collector = LogCollector(sink, linger=None, writes=writes, max_unwritten=1000, on_error=errors.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        with collector.sender() as send:
            await send.send([plugin_line("t1", i) for i in range(300)])
            await send.send([plugin_line("t2", i, at=5000 + i) for i in range(200)])
            send.send_always(LogEntry("e1", "t1", LogLevel.WARN, "worker", "Task t1 cancelled"))
            await trio.sleep(60)
            assert sink.lost == [] and collector.statistics().lost == 0  # held, not dropped, while it waits
            writes.give_up_at(trio.current_time() + 5)
            assert await collector.flush() is True  # the loss records and the engine's line are stored
            # past the deadline plugin output is counted, not written, and never waits for room
            await send.send([plugin_line("t1", i, at=9000 + i) for i in range(2000)])
            assert await collector.flush() is True
        collector.close()
    assert [(x.task_id, x.count, x.first_at, x.last_at) for x in sink.lost] == [
        ("t1", 300, 1000, 1299), ("t2", 200, 5000, 5199), ("t1", 2000, 9000, 10999),
    ]
    gap = sink.batches[0][1][0]
    assert gap.level == LogLevel.ERROR and gap.task_id == "t1" and gap.timestamp == 1000  # at the place of the gap
    assert gap.message.startswith("300 log lines of task t1 (from ") and "database or disk is full" in gap.message
    assert gap.metadata["lost_entries"] == 300 and gap.metadata["reason_code"] == "DATABASE_ERROR"
    assert [e.message for e in sink.batches[0][1][2:]] == ["Task t1 cancelled"]  # kept, after the records
    stats = collector.statistics()
    assert stats.lost == 2500 and stats.lost_unrecorded == 0 and stats.unwritten == 0
    assert not any("could not be written" in e for e in errors)  # recorded in the database, not only on stderr


async def test_a_database_back_before_the_deadline_loses_nothing(autojump_clock):
    sink = OutageSink(until=trio.current_time() + 8)
    writes = WriteRetry(on_error=lambda _: None)
    collector = LogCollector(sink, linger=None, writes=writes, on_error=lambda _: None)
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        with collector.sender() as send:
            await send.send([plugin_line("t1", i) for i in range(50)])
            await trio.sleep(2)
            writes.give_up_at(trio.current_time() + 10)  # the run is stopping; the disk gets room at 8 s
            assert await collector.flush() is True
        collector.close()
    assert sink.messages == [f"t1 line {i}" for i in range(50)] and sink.lost == []
    assert collector.statistics().lost == 0
