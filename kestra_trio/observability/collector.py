"""LogCollector: producers send LogEntry values into a memory channel; one flusher task
batches them (100 entries or 1 s after the oldest, sooner when the channel runs dry) and
writes each batch in one transaction.

Back-pressure, not loss. At most `max_unwritten` entries are held unwritten: past that a
plugin's reader waits in `LogSender.send`, so it stops reading the plugin's pipe and the
plugin blocks on its next write. While the database refuses writes (disk full, read-only
file, I/O error) everything is kept and retried in order (`WriteRetry`); the engine's own
few lines (`send_always`) never wait, so a stop is never stuck behind plugin output.

Giving up. Once the run is stopping, the shared WriteRetry has a deadline; after it each
write is tried once, nobody waits any more, and plugin lines that still cannot be written
are counted per task and recorded as lost as soon as the database takes a write: an ERROR
entry at the place of the gap and `executions.log_entries_lost`. The engine's lines are kept
for the next attempt, behind those records.

Shutdown is a channel close (STYLE idiom 3): when every producer clone is closed the
flusher sees EndOfChannel, writes what it holds (retrying for `close_grace` at most) and
returns. If it is cancelled instead, its `finally` does the same under a shield.
`flush()` is a barrier: it returns once everything sent before it is committed (or, after
giving up, recorded as lost), which is how the engine makes sure a terminal state is never
visible before the lines that led to it.
"""

from __future__ import annotations

import collections
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from kestra_trio.observability.records import LogEntry, LogLevel, LostEntries
from kestra_trio.secrets.masking import Masker
from kestra_trio.storage.ports import LogSink
from kestra_trio.storage.text import encodable
from kestra_trio.storage.write_retry import DEFAULT_RETRY_DELAYS, WriteRetry, describe_refusal

OVERFLOW_MESSAGE = "log buffer overflow: flushing early"
#: entries received and not yet written before plugin readers wait (~250 bytes per 100-byte line)
DEFAULT_MAX_UNWRITTEN = 65_536


@dataclass(frozen=True)
class CollectorStatistics:
    received: int
    flushed: int
    batches: int
    backlog: int
    #: entries sent and not yet written (or counted lost): what `max_unwritten` bounds
    unwritten: int
    #: producers waiting for room (back-pressure)
    waiting_senders: int
    #: entries that could not be written (each in a stored loss record, or reported)
    lost: int
    #: of those, entries whose loss could not be stored either (reported on stderr only)
    lost_unrecorded: int
    overflow_episodes: int
    write_failures: int
    #: seconds spent in successful trips to the database (with `batches`: the flush latency)
    flush_seconds: float = 0.0


class _Barrier:
    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.ok = True


def _is_plugin_output(entry: LogEntry) -> bool:
    return entry.source.startswith("plugin:")


def report_to_stderr(message: str) -> None:
    """Default error sink of engine components: one `kestra-trio: ...` line, never a traceback."""
    try:
        sys.stderr.write(f"kestra-trio: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class LogSender:
    """One producer's end of the collector's channel (use `with`, or `close()` when done).

    `send` waits while `max_unwritten` entries are unwritten (back-pressure); `send_always`
    never waits: for the engine's own lines, few and bounded by what the engine does."""

    __slots__ = ("_collector", "_channel")

    def __init__(self, collector: LogCollector, channel: trio.MemorySendChannel[LogEntry | list[LogEntry]]) -> None:
        self._collector = collector
        self._channel = channel

    async def send(self, item: LogEntry | list[LogEntry]) -> None:
        """Send one entry or a list of them (one channel operation); waits for room first."""
        collector = self._collector
        if collector.is_full():
            await collector.wait_for_room()  # cancelled while waiting: nothing was sent
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
        self.send_always(item)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def send_nowait(self, item: LogEntry | list[LogEntry]) -> None:
        """Like `send`, but raises `trio.WouldBlock` instead of waiting for room."""
        if self._collector.is_full():
            raise trio.WouldBlock
        self.send_always(item)

    def send_always(self, item: LogEntry | list[LogEntry]) -> None:
        """Send without waiting for room, even past the bound."""
        self._channel.send_nowait(item)
        self._collector._unwritten += len(item) if isinstance(item, list) else 1

    def clone(self) -> LogSender:
        return LogSender(self._collector, self._channel.clone())

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> LogSender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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
        max_unwritten: int = DEFAULT_MAX_UNWRITTEN,
        writes: WriteRetry | None = None,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        close_grace: float = 10.0,
        calm_period: float = 5.0,
        batches_per_hop: int = 10,
        on_error: Callable[[str], None] = report_to_stderr,
        report_unrecorded_loss: bool = True,
    ) -> None:
        """
        Args:
          buffer_size: channel items waiting for the flusher that count as pressure (it then
            writes without lingering, and logs one WARN per episode).
          max_unwritten: entries held unwritten before `LogSender.send` waits.
          writes: the run's shared WriteRetry (retry pacing, give-up deadline, outage
            reports); by default one of the collector's own.
          close_grace: how long the flusher keeps retrying after every producer is gone.
          report_unrecorded_loss: report on `on_error` the entries that could not even be
            recorded as lost when the collector ends (False when the caller reports them).
        """
        self._sink = sink
        self._batch_size = batch_size
        self._max_delay = max_delay
        self._linger = linger
        self._max_batch = max(max_batch, batch_size)
        self._buffer_size = buffer_size
        self._max_unwritten = max(1, max_unwritten)
        self._resume_at = self._max_unwritten * 3 // 4
        self._writes = writes if writes is not None else WriteRetry(retry_delays=retry_delays, on_error=on_error)
        self._close_grace = close_grace
        self._on_error = on_error
        self._report_unrecorded_loss = report_unrecorded_loss
        # unbounded: the bound is on entries (`max_unwritten`), and the engine's lines and
        # barriers must never wait behind plugin output
        self._send, self._receive = trio.open_memory_channel[LogEntry | list[LogEntry] | _Barrier](math.inf)
        self._control = self._send.clone()  # for barriers; closed with the collector
        self._backlog: collections.deque[LogEntry] = collections.deque()
        self._waiting_barriers: list[_Barrier] = []
        self._maskers: dict[str, Masker] = {}
        self._received = self._flushed = self._batches = 0
        self._episodes = self._failures = 0
        self._flush_seconds = 0.0
        self._unwritten = 0
        self._room = trio.lowlevel.ParkingLot()
        self._unbounded = False  # after giving up (or ending): nobody waits for room
        self._stalled = False  # after giving up, a failed attempt waits for something new
        self._lost_pending: dict[tuple[str, str | None], LostEntries] = {}
        self._gave_up_cause: str | None = None
        self._lost = self._lost_unrecorded = 0
        self._lost_by_execution: collections.Counter[str] = collections.Counter()
        self._in_overflow = False
        self._last_pressure = -math.inf
        self._calm_period = calm_period
        self._batches_per_hop = max(1, batches_per_hop)
        self._closed = False

    # producer side -------------------------------------------------------------------
    def sender(self) -> LogSender:
        """A channel for one producer; close it (use `with`) when that producer is done.

        Send single entries, or lists of entries (a stream reader sends one list per chunk
        it read: one channel operation instead of one per line); keep lists to a few
        hundred entries.
        """
        return LogSender(self, self._send.clone())  # type: ignore[arg-type]

    def is_full(self) -> bool:
        """True while `LogSender.send` would wait for room."""
        return self._unwritten >= self._max_unwritten and not self._unbounded

    async def wait_for_room(self) -> None:
        while self.is_full():
            await self._room.park()

    def set_masker(self, execution_id: str, masker: Masker) -> None:
        """Every entry of `execution_id` is masked with this before it is written."""
        if masker.active:
            self._maskers[execution_id] = masker

    def forget_masker(self, execution_id: str) -> None:
        """The execution has ended and its lines are flushed: a long-lived collector lets go."""
        self._maskers.pop(execution_id, None)

    async def flush(self) -> bool:
        """Return once every entry sent before this call is committed: True.

        While the database refuses writes this waits for it (the run waits) until the
        shared WriteRetry's give-up deadline; after that it returns after one more attempt:
        True if what was sent before it is written or recorded as lost, False if the
        database took nothing."""
        if self._closed:
            return not (self._backlog or self._lost_pending)
        barrier = _Barrier()
        try:
            self._control.send_nowait(barrier)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        await barrier.done.wait()
        return barrier.ok

    def close(self) -> None:
        """Close the collector's own channels; the flusher ends once producers close theirs."""
        self._closed = True
        self._send.close()
        self._control.close()

    def lost_for(self, execution_id: str) -> int:
        """Entries of `execution_id` that could not be written (counted, recorded or not)."""
        return self._lost_by_execution[execution_id]

    def unrecorded_for(self, execution_id: str) -> int:
        """Entries of `execution_id` whose loss (or whose line) the database has not taken yet."""
        pending = sum(r.count for (eid, _), r in self._lost_pending.items() if eid == execution_id)
        return pending + sum(1 for entry in self._backlog if entry.execution_id == execution_id)

    def statistics(self) -> CollectorStatistics:
        return CollectorStatistics(
            received=self._received,
            flushed=self._flushed,
            batches=self._batches,
            backlog=len(self._backlog) + self._receive.statistics().current_buffer_used,
            unwritten=self._unwritten,
            waiting_senders=len(self._room),
            lost=self._lost,
            lost_unrecorded=self._lost_unrecorded,
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
        if self._gave_up_cause is not None:
            # past the deadline the disk's last room is for the loss records and the engine's
            # lines (and the final state): plugin output is counted, not written
            entries = self._shed(entries)
            if not entries:
                return
        if self._maskers:
            for entry in entries:
                masker = self._maskers.get(entry.execution_id)
                if masker is not None:
                    entry.message = masker.mask(entry.message)
                    if entry.metadata:
                        entry.metadata = masker.mask_value(entry.metadata)
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
                self._unwritten += 1
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
        if (self._stalled or not self._backlog) and not self._waiting_barriers:
            try:
                self._take(await self._receive.receive())
            except trio.EndOfChannel:
                return False
            self._stalled = False
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

    def _count_written(self, batches: Sequence[Sequence[LogEntry]]) -> None:
        written = sum(len(b) for b in batches)
        self._flushed += written
        self._batches += len(batches)
        self._release(written)

    def _release(self, count: int) -> None:
        """`count` entries are no longer held: wake the producers waiting for room once a
        quarter of the bound is free (not on every batch: fewer wake-ups under load)."""
        self._unwritten -= count
        if self._room and (self._unwritten <= self._resume_at or self._unbounded):
            self._room.unpark_all()

    async def _write_held(self) -> None:
        """Write the pending loss records, then the backlog, in order; raise on failure
        (what was not written stays held)."""
        if self._lost_pending:
            await self._sink.record_lost(list(self._lost_pending.values()), [])
            self._lost_pending.clear()
        while self._backlog:
            # up to `batches_per_hop` transactions per trip to the database thread
            batches = []
            while self._backlog and len(batches) < self._batches_per_hop:
                size = min(self._max_batch, len(self._backlog))
                batches.append([self._backlog.popleft() for _ in range(size)])
            await self._insert(batches)

    async def _write_backlog(self) -> None:
        """Write everything held; while the database refuses, retry (the run waits) until the
        give-up deadline, then give up (see the module docstring). Releases the barriers."""
        attempt = 0
        holding = False
        while self._backlog or self._lost_pending:
            try:
                await self._write_held()
            except UnicodeEncodeError:  # a lone surrogate in some entry: not a database problem
                self._backlog = collections.deque(encodable(e) for e in self._backlog)
                continue
            except Exception as exc:  # disk full, read-only, I/O error, locked, ...
                self._failures += 1
                if not holding:
                    holding = True
                    self._writes.refused(exc, "log lines")
                if self._receive.statistics().open_send_channels == 0:
                    # every producer is gone (the run is over): the close grace applies from now
                    self._writes.give_up_at(trio.current_time() + self._close_grace)
                if not await self._writes.pause(attempt):
                    await self._give_up(exc)
                    break
                attempt += 1
        held = bool(self._backlog or self._lost_pending)
        if holding:
            self._writes.settled(written=not held)
        barriers, self._waiting_barriers = self._waiting_barriers, []
        for barrier in barriers:
            barrier.ok = not held
            barrier.done.set()

    async def _give_up(self, exc: BaseException) -> None:
        """The deadline passed and the database still refuses: nobody waits for room any
        more; plugin lines held are counted as lost, per task; the loss records and the
        engine's own lines are tried once more, together."""
        if not self._unbounded:
            self._unbounded = True
            self._room.unpark_all()
        self._gave_up_cause = describe_refusal(exc)
        kept = collections.deque(self._shed(self._backlog))
        self._backlog = kept
        while True:  # everything already sent is counted at once: one loss record per task
            try:
                self._take(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        if not (self._lost_pending or kept):
            return
        try:
            await self._sink.record_lost(list(self._lost_pending.values()), list(kept))
        except Exception:
            self._stalled = True  # try again when something new arrives, or at the end
            return
        self._lost_pending.clear()
        self._backlog = collections.deque()
        self._count_written([kept])

    def _shed(self, entries: Sequence[LogEntry]) -> list[LogEntry]:
        """Count the plugin output among `entries` as lost (per task); return the rest."""
        cause = self._gave_up_cause or "the database refused writes"
        kept = []
        lost = 0
        for entry in entries:
            if not _is_plugin_output(entry):
                kept.append(entry)
                continue
            lost += 1
            self._lost_by_execution[entry.execution_id] += 1
            key = (entry.execution_id, entry.task_id)
            record = self._lost_pending.get(key)
            if record is None:
                self._lost_pending[key] = LostEntries(
                    entry.execution_id, entry.task_id, 1, entry.timestamp, entry.timestamp, cause
                )
            else:
                record.add(1, entry.timestamp, entry.timestamp, cause)
        self._lost += lost
        self._release(lost)
        return kept

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The flusher. Returns when every producer channel is closed and everything is written."""
        task_status.started()
        try:
            while await self._gather():
                await self._write_backlog()
        finally:
            with trio.CancelScope(shield=True):
                await self._final_drain()

    async def _final_drain(self) -> None:
        while True:
            try:
                self._take(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        # the run is over: a refusing database gets `close_grace` more, not forever
        self._writes.give_up_at(trio.current_time() + self._close_grace)
        with trio.move_on_after(self._close_grace + 5):  # a database that hangs instead of failing
            await self._write_backlog()
        unrecorded = len(self._backlog) + sum(record.count for record in self._lost_pending.values())
        self._lost += len(self._backlog)
        self._lost_by_execution.update(entry.execution_id for entry in self._backlog)
        self._lost_unrecorded += unrecorded
        if unrecorded and self._report_unrecorded_loss:
            cause = self._writes.last_error or "the database did not answer in time"
            self._on_error(f"{unrecorded:,} log entries could not be written to the database and are lost ({cause})")
        self._release(len(self._backlog))
        self._backlog.clear()
        self._lost_pending.clear()
        self._unbounded = True
        self._room.unpark_all()
        for barrier in self._waiting_barriers:
            barrier.ok = not unrecorded
            barrier.done.set()
        self._waiting_barriers = []
        self._receive.close()
