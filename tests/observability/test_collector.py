"""LogCollector timing and failure behaviour, with a fake sink and the autojump clock."""

from __future__ import annotations

import sqlite3

import pytest
import trio

from kestra_trio.observability.collector import OVERFLOW_MESSAGE, LogCollector
from kestra_trio.observability.records import LogEntry, LogLevel
from kestra_trio.secrets.masking import MASK, Masker


class FakeSink:
    def __init__(self, *, delay: float = 0.0, failures: int = 0) -> None:
        self.batches: list[tuple[float, list[LogEntry]]] = []
        self.delay = delay
        self.failures = failures

    async def insert_batch(self, entries):
        if self.delay:
            await trio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        self.batches.append((trio.current_time(), list(entries)))

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
    assert len([e for e in errors if "cannot write logs" in e]) == 1
    assert any("recovered" in e for e in errors)
    assert collector.statistics().write_failures == 3
    assert collector.statistics().dropped == 0


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
    assert collector.statistics().dropped == 5
    assert any("5 log entries could not be written" in e for e in errors)


async def test_flush_does_not_hang_while_the_database_keeps_failing(autojump_clock):
    # a stop path awaits flush() shielded: a broken disk must not make Ctrl+C useless
    sink = FakeSink(failures=10**9)
    errors: list[str] = []
    collector = LogCollector(sink, linger=None, on_error=errors.append, close_grace=3.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(collector.run)
        with collector.sender() as send:
            await send.send(entry(0))
            started = trio.current_time()
            with trio.CancelScope(shield=True):
                await collector.flush()
            assert 3.0 <= trio.current_time() - started < 4.0
            assert any("going on without them" in e for e in errors)
        collector.close()
    assert collector.statistics().dropped == 1  # counted and reported, never silent
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
