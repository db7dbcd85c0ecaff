"""Time skipping for tests: the engine's waits pass instantly, real processes get real time.

The engine already measures every wait on trio's clock (retry backoffs, task and execution
timeouts, the collector's batching), so under pytest-trio's `autojump_clock` (a `MockClock`
that jumps to the next deadline whenever every task is blocked) they pass instantly. Two
things must not skip:

- a plugin process runs for real: while one runs, the clock runs at real speed and does not
  jump (Temporal's test server does the same while an activity runs), otherwise a task's
  timeout would fire while its process is still working;
- a database call runs in sqlite-anyio's worker thread, so to trio every task looks blocked
  while it runs: without a hold the clock would jump to the next deadline in the middle of
  a state change (a 10-minute backoff would record as 11 when the next deadline is a
  1-minute poll), and an execution timeout could fire while the engine only writes;
- starting and closing the service (the watchdog process, the final log drain) are real work
  too.

`TimeSkipping.real_time()` holds time at real speed for as long as any holder is inside it.
Recorded timestamps (`now_ms`) follow the same clock, so a skipped 10-minute backoff shows as
10 minutes in `inspect`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import Any

import trio
from trio.testing import MockClock

from kestra_trio.observability.records import use_clock
from kestra_trio.storage.db import Database


class TimeSkipping:
    """The test's clock, when it is a `MockClock`; otherwise everything runs in real time."""

    def __init__(self, clock: trio.abc.Clock) -> None:
        self.clock = clock if isinstance(clock, MockClock) else None
        self._holders = 0
        self._saved: tuple[float, float] | None = None

    @property
    def active(self) -> bool:
        """True when waits skip: a MockClock that jumps (autojump) or is advanced by the test."""
        return self.clock is not None

    def hold(self) -> None:
        """Real time from now until the matching `release` (holds nest)."""
        clock = self.clock
        if clock is None:
            return
        if self._holders == 0:
            self._saved = (clock.rate, clock.autojump_threshold)
            clock.autojump_threshold = math.inf
            clock.rate = 1.0
        self._holders += 1

    def release(self) -> None:
        clock = self.clock
        if clock is None:
            return
        self._holders -= 1
        if self._holders == 0 and self._saved is not None:
            clock.rate, clock.autojump_threshold = self._saved

    @contextlib.contextmanager
    def real_time(self) -> Iterator[None]:
        self.hold()
        try:
            yield
        finally:
            self.release()

    @contextlib.contextmanager
    def recorded_timestamps(self) -> Iterator[None]:
        """While inside: `now_ms` (every stored timestamp) is the wall clock at entry plus the
        time that passed on the test's clock."""
        clock = self.clock
        if clock is None:
            yield
            return
        wall_at_start = time.time_ns()
        clock_at_start = clock.current_time()
        previous = use_clock(lambda: wall_at_start + int((clock.current_time() - clock_at_start) * 1e9))
        try:
            yield
        finally:
            use_clock(previous)


class RealTimeDatabase(Database):
    """The service's database, each call held in real time (the worker thread is real work)."""

    def __init__(self, db: Database, time: TimeSkipping) -> None:
        super().__init__(db.conn, db.path)
        self._time = time

    async def run(self, fn: Any, *args: Any) -> Any:
        with self._time.real_time():
            return await super().run(fn, *args)
