"""LogCollector: producers send LogEntry values into a bounded memory channel; one flusher
task batches them (100 entries or 1 s after the oldest, sooner when the channel runs dry)
and writes each batch in one transaction.

Shutdown is a channel close (STYLE idiom 3): when every producer clone is closed the
flusher sees EndOfChannel, writes what it holds and returns. If it is cancelled instead,
its `finally` drains the channel and writes under a shielded scope with a grace deadline.
`flush()` is a barrier: it returns once everything sent before it is committed, which is
how the engine makes sure a terminal state is never visible before the lines that led to it.
"""

from __future__ import annotations

import collections
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from kestra_trio.observability.records import LogEntry, LogLevel
from kestra_trio.secrets.masking import Masker
from kestra_trio.storage.ports import LogSink
from kestra_trio.storage.text import encodable

OVERFLOW_MESSAGE = "log buffer overflow: flushing early"


@dataclass(frozen=True)
class CollectorStatistics:
    received: int
    flushed: int
    batches: int
    backlog: int
    dropped: int
    overflow_episodes: int
    write_failures: int
    #: seconds spent in successful trips to the database (with `batches`: the flush latency)
    flush_seconds: float = 0.0


class _Barrier:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = trio.Event()


def report_to_stderr(message: str) -> None:
    """Default error sink of engine components: one `kestra-trio: ...` line, never a traceback."""
    try:
        sys.stderr.write(f"kestra-trio: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class LogCollector:
    """Batching log writer. Use `open_log_collector` or `nursery.start(collector.run)`."""

    def __init__(
        self,
        sink: LogSink,
        *,
        batch_size: int = 100,
        max_delay: float = 1.0,
        linger: float | None = 0.02,
        max_batch: int = 1000,
        buffer_size: int = 256,
        backlog_limit: int = 200_000,
        retry_delays: Sequence[float] = (0.1, 0.25, 0.5, 1.0, 2.0),
        close_grace: float = 10.0,
        calm_period: float = 5.0,
        batches_per_hop: int = 10,
        on_error: Callable[[str], None] = report_to_stderr,
    ) -> None:
        self._sink = sink
        self._batch_size = batch_size
        self._max_delay = max_delay
        self._linger = linger
        self._max_batch = max(max_batch, batch_size)
        self._buffer_size = buffer_size
        self._backlog_limit = backlog_limit
        self._retry_delays = tuple(retry_delays)
        self._close_grace = close_grace
        self._on_error = on_error
        self._send, self._receive = trio.open_memory_channel[LogEntry | list[LogEntry] | _Barrier](buffer_size)
        self._control = self._send.clone()  # for barriers; closed with the collector
        self._backlog: collections.deque[LogEntry] = collections.deque()
        self._waiting_barriers: list[_Barrier] = []
        self._maskers: dict[str, Masker] = {}
        self._received = self._flushed = self._batches = self._dropped = 0
        self._episodes = self._failures = 0
        self._flush_seconds = 0.0
        self._in_overflow = False
        self._last_pressure = -math.inf
        self._calm_period = calm_period
        self._batches_per_hop = max(1, batches_per_hop)
        self._failing = False
        self._closed = False

    # producer side -------------------------------------------------------------------
    def sender(self) -> trio.MemorySendChannel[LogEntry | list[LogEntry]]:
        """A channel for one producer; close it (use `with`) when that producer is done.

        Send single entries, or lists of entries (a stream reader sends one list per chunk
        it read: one channel operation instead of one per line). The channel holds
        `buffer_size` items; keep lists to a few hundred entries so memory stays bounded.
        """
        return self._send.clone()  # type: ignore[return-value]

    def set_masker(self, execution_id: str, masker: Masker) -> None:
        """Every entry of `execution_id` is masked with this before it is written."""
        if masker.active:
            self._maskers[execution_id] = masker

    def forget_masker(self, execution_id: str) -> None:
        """The execution has ended and its lines are flushed: a long-lived collector lets go."""
        self._maskers.pop(execution_id, None)

    async def flush(self) -> None:
        """Return once every entry sent before this call is committed (or reported lost).

        While writes keep failing (disk I/O error, read-only file) it gives up after
        `close_grace` seconds: the entries stay queued and retried, but the caller (often a
        shielded stop path) must not hang for as long as the database is broken."""
        if self._closed:
            return
        barrier = _Barrier()
        try:
            await self._control.send(barrier)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return
        while True:
            with trio.move_on_after(self._close_grace):
                await barrier.done.wait()
                return
            if self._failing:
                self._on_error(
                    f"log writes have been failing for over {self._close_grace:g} s: going on without them "
                    "(they are retried until the engine exits; what is still unwritten then is counted as lost)"
                )
                return

    def close(self) -> None:
        """Close the collector's own channels; the flusher ends once producers close theirs."""
        self._closed = True
        self._send.close()
        self._control.close()

    def statistics(self) -> CollectorStatistics:
        return CollectorStatistics(
            received=self._received,
            flushed=self._flushed,
            batches=self._batches,
            backlog=len(self._backlog) + self._receive.statistics().current_buffer_used,
            dropped=self._dropped,
            overflow_episodes=self._episodes,
            write_failures=self._failures,
            flush_seconds=self._flush_seconds,
        )

    # flusher side ---------------------------------------------------------------------
    def _take(self, item: LogEntry | list[LogEntry] | _Barrier) -> None:
        if isinstance(item, _Barrier):
            self._waiting_barriers.append(item)
            return
        entries = item if isinstance(item, list) else (item,)
        if not entries:
            return
        self._received += len(entries)
        if self._maskers:
            for entry in entries:
                masker = self._maskers.get(entry.execution_id)
                if masker is not None:
                    entry.message = masker.mask(entry.message)
                    if entry.metadata:
                        entry.metadata = masker.mask_value(entry.metadata)
        overflow = len(self._backlog) + len(entries) - self._backlog_limit
        if overflow > 0:  # only while the database keeps failing: counted and reported
            for _ in range(min(overflow, len(self._backlog))):
                self._backlog.popleft()
            self._dropped += overflow
        self._backlog.extend(entries)
        self._check_overflow(entries[-1])

    def _check_overflow(self, item: LogEntry) -> None:
        """One WARN per episode of pressure; an episode ends after a calm period."""
        used = self._receive.statistics().current_buffer_used
        now = trio.current_time()
        if used >= self._buffer_size * 0.9:
            if not self._in_overflow and now - self._last_pressure > self._calm_period:
                self._episodes += 1
                self._backlog.append(
                    LogEntry(
                        item.execution_id,
                        None,
                        LogLevel.WARN,
                        "scheduler",
                        OVERFLOW_MESSAGE,
                        {"component": "log_collector", "buffered": used},
                    )
                )
            self._in_overflow = True
            self._last_pressure = now
        elif self._in_overflow and used <= self._buffer_size * 0.25:
            self._in_overflow = False

    def _take_available(self, limit: int) -> bool:
        """Move what is already in the channel into the backlog; False once the channel is closed."""
        while len(self._backlog) < limit and not self._waiting_barriers:
            try:
                self._take(self._receive.receive_nowait())
            except trio.WouldBlock:
                return True
            except trio.EndOfChannel:
                return False
        return True

    async def _gather(self) -> bool:
        """Fill the backlog up to one batch, respecting 100 / 1 s / linger. False when closed."""
        if not self._backlog and not self._waiting_barriers:
            try:
                self._take(await self._receive.receive())
            except trio.EndOfChannel:
                return False
        deadline = trio.current_time() + self._max_delay
        while len(self._backlog) < self._batch_size and not self._waiting_barriers:
            if not self._take_available(self._batch_size):
                return False
            if len(self._backlog) >= self._batch_size or self._waiting_barriers or self._in_overflow:
                break
            wait_until = deadline if self._linger is None else min(deadline, trio.current_time() + self._linger)
            with trio.move_on_at(wait_until):
                try:
                    self._take(await self._receive.receive())
                except trio.EndOfChannel:
                    return False
                continue
            break  # dry for the whole linger (or the 1 s deadline passed)
        # under load, write bigger batches: one transaction per up to max_batch entries
        return self._take_available(self._max_batch)

    async def _insert(self, batches: list[list[LogEntry]]) -> None:
        """Write `batches` (one transaction each); on failure re-queue what was not committed."""
        many = getattr(self._sink, "insert_batches", None)
        began = time.perf_counter()
        try:
            if many is not None and len(batches) > 1:
                await many(batches)
            else:
                for index, batch in enumerate(batches):
                    try:
                        await self._sink.insert_batch(batch)
                    except Exception as exc:
                        exc.committed = index  # type: ignore[attr-defined]
                        raise
        except Exception as exc:
            committed = getattr(exc, "committed", 0)
            for batch in reversed(batches[committed:]):
                self._backlog.extendleft(reversed(batch))
            self._count_written(batches[:committed])
            raise
        self._flush_seconds += time.perf_counter() - began
        self._count_written(batches)

    def _count_written(self, batches: list[list[LogEntry]]) -> None:
        self._flushed += sum(len(b) for b in batches)
        self._batches += len(batches)

    async def _write_backlog(self, *, final: bool = False) -> None:
        failure_at = None
        attempt = 0
        while self._backlog:
            # up to `batches_per_hop` transactions per trip to the database thread
            batches = []
            while self._backlog and len(batches) < self._batches_per_hop:
                size = min(self._max_batch, len(self._backlog))
                batches.append([self._backlog.popleft() for _ in range(size)])
            try:
                await self._insert(batches)
            except UnicodeEncodeError:  # a lone surrogate in some entry: not a database problem
                self._backlog = collections.deque(encodable(e) for e in self._backlog)
                continue
            except Exception as exc:  # database locked, disk full, read-only, ...
                self._failures += 1
                if not self._failing:
                    self._failing = True
                    self._on_error(f"cannot write logs to the database ({exc}); retrying, nothing is dropped yet")
                if failure_at is None:
                    failure_at = trio.current_time()
                delay = self._retry_delays[min(attempt, len(self._retry_delays) - 1)]
                attempt += 1
                # every producer gone (the run is over): from now on the close grace applies
                final = final or self._receive.statistics().open_send_channels == 0
                if final and trio.current_time() - failure_at > self._close_grace:
                    raise
                await trio.sleep(delay)
                if not final:
                    self._take_available(self._backlog_limit)
                continue
            if self._failing:
                self._failing = False
                self._on_error("log writes recovered")
        barriers, self._waiting_barriers = self._waiting_barriers, []
        for barrier in barriers:
            barrier.done.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The flusher. Returns when every producer channel is closed and everything is written."""
        task_status.started()
        try:
            while await self._gather():
                try:
                    await self._write_backlog()
                except Exception:  # the run is over and writes failed past the grace:
                    break  # _final_drain tries once more, then counts and reports the loss
        finally:
            with trio.CancelScope(shield=True):
                await self._final_drain()

    async def _final_drain(self) -> None:
        while True:
            try:
                self._take(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        try:
            with trio.move_on_after(self._close_grace + 5):
                await self._write_backlog(final=True)
        except Exception as exc:
            self._on_error(f"cannot write logs to the database ({exc})")
        lost = len(self._backlog) + self._dropped
        if lost:
            self._on_error(f"{lost} log entries could not be written to the database and are lost")
        self._dropped += len(self._backlog)
        self._backlog.clear()
        for barrier in self._waiting_barriers:
            barrier.done.set()
        self._waiting_barriers = []
        self._receive.close()
