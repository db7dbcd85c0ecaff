"""WriteRetry: what every writer of a run does while the database refuses writes.

A full disk, a read-only file or an I/O error is not a reason to lose what the run
produced: while the run goes on, a refused write is retried (with backoff) for as long as
it takes, and the run waits for it — back-pressure, never loss. Once the run is asked to
stop, `give_up_at(deadline)` bounds the wait: after the deadline each write is tried once
more and the caller decides what to keep (the log collector counts and records what it
could not store; the engine keeps state changes for its final transaction).

One WriteRetry is shared by the log collector, the audit logger and the engine's state
changes, so an outage is reported once when it starts and once when it ends.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio

from kestra_trio.storage.logs import PartialWrite

T = TypeVar("T")

DEFAULT_RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)


def is_write_refused(exc: BaseException) -> bool:
    """True for a database that refuses a write (disk full, read-only, I/O error, locked):
    worth waiting for. Not for our own bugs (IntegrityError, ProgrammingError, ...)."""
    if isinstance(exc, PartialWrite):
        exc = exc.__cause__ or exc
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


def describe_refusal(exc: BaseException) -> str:
    """The database's own words (`database or disk is full`), without our wrapping."""
    if isinstance(exc, PartialWrite) and exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc)


class WriteRetry:
    """Retry policy and outage state for the writes of one run (see the module docstring)."""

    def __init__(
        self,
        *,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        on_error: Callable[[str], None] | None = None,
        on_give_up: Callable[[], None] | None = None,
    ) -> None:
        """
        Args:
          on_error: reports the start and the end of an outage (one line each).
          on_give_up: called once, when a writer first gives up (e.g. `Ballast.release`).
        """
        self._delays = tuple(retry_delays) or (1.0,)
        self._on_error = on_error
        self.on_give_up = on_give_up
        self.deadline = math.inf
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self._waiting = 0  # writers holding something the database refused
        self._sleeping: set[anyio.CancelScope] = set()

    @property
    def failing(self) -> bool:
        """True while some writer holds something the database refused."""
        return self.failing_since is not None

    @property
    def gave_up(self) -> bool:
        """True once the give-up deadline has passed: writes are tried once, not waited for."""
        return anyio.current_time() >= self.deadline

    def give_up_at(self, deadline: float) -> None:
        """Stop waiting for the database at `deadline` (trio clock); the earliest deadline wins."""
        if deadline < self.deadline:
            self.deadline = deadline
            for scope in self._sleeping:
                scope.deadline = min(scope.deadline, deadline)

    def refused(self, exc: BaseException, what: str) -> None:
        """A writer now holds something the database refused; the first of an outage is reported."""
        self.last_error = describe_refusal(exc)
        self._waiting += 1
        if self.failing_since is None:
            self.failing_since = anyio.current_time()
            self._report(
                f"cannot write {what} to the database ({self.last_error}); waiting for it and retrying: "
                "nothing is dropped (the plugins wait; Ctrl+C stops the run)"
            )

    def settled(self, *, written: bool) -> None:
        """That writer no longer holds it (`written`: because it is stored now). The outage is
        over, and reported so, when the last waiting writer got its write through."""
        self._waiting = max(0, self._waiting - 1)
        if self._waiting == 0 and self.failing_since is not None and written:
            seconds = anyio.current_time() - self.failing_since
            self.failing_since = None
            if not self.gave_up:  # after giving up, the run's last line says what was kept
                self._report(f"database writes work again (after {seconds:.1f} s)")

    async def pause(self, attempt: int) -> bool:
        """Sleep the backoff delay of retry `attempt` (0-based), never past the deadline.

        Returns False when the deadline has passed: give up instead of retrying."""
        delay = self._delays[min(attempt, len(self._delays) - 1)]
        with anyio.CancelScope(deadline=min(anyio.current_time() + delay, self.deadline)) as scope:
            self._sleeping.add(scope)
            try:
                await anyio.sleep_forever()
            finally:
                self._sleeping.discard(scope)
        if not self.gave_up:
            return True
        hook, self.on_give_up = self.on_give_up, None
        if hook is not None:
            hook()
        return False

    async def call(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """`await fn(*args)`, retried while the database refuses it and the deadline has not passed.

        Raises:
            the last refusal, once the deadline has passed (the write was tried at least once).
        """
        attempt = 0
        holding = written = False
        try:
            while True:
                try:
                    result = await fn(*args)
                except Exception as exc:
                    if not is_write_refused(exc):
                        raise
                    if holding:
                        self.last_error = describe_refusal(exc)
                    else:
                        holding = True
                        self.refused(exc, what)
                    if not await self.pause(attempt):
                        raise
                    attempt += 1
                    continue
                written = True
                return result
        finally:
            if holding:
                self.settled(written=written)

    def _report(self, message: str) -> None:
        if self._on_error is not None:
            self._on_error(message)
