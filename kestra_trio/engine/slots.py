"""TaskSlots: the process-wide bound on running tasks (`--max-parallel`).

Like `trio.CapacityLimiter` (first come, first served; a freed slot is handed straight to
the next waiter), with one rule added: a task resuming after a retry backoff goes ahead of
tasks that have not started yet — it was admitted once already, and making it wait behind a
whole fan-out would stretch its backoff far past the configured delay.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import trio


@dataclass(frozen=True)
class SlotStatistics:
    total: int
    running: int  # slots held
    waiting_to_start: int
    waiting_to_resume: int


class _Ticket:
    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.granted = False


class TaskSlots:
    def __init__(self, total: int) -> None:
        if total < 1:
            raise ValueError(f"at least one task slot is needed, got {total}")
        self.total = total
        self._used = 0
        self._resume: deque[_Ticket] = deque()
        self._start: deque[_Ticket] = deque()

    async def acquire(self, *, resuming: bool = False) -> None:
        """Wait for a slot (always a checkpoint). Cancelled while waiting: nothing is held."""
        queue = self._resume if resuming else self._start
        if self._used < self.total and not self._resume and (resuming or not self._start):
            self._used += 1
            try:
                await trio.lowlevel.checkpoint()
            except BaseException:
                self.release()
                raise
            return
        ticket = _Ticket()
        queue.append(ticket)
        try:
            await ticket.event.wait()
        except BaseException:
            if ticket.granted:  # handed over just as we were cancelled: pass it on
                self.release()
            else:
                queue.remove(ticket)
            raise

    def release(self) -> None:
        """Give a slot back; the next waiter (a resuming task first) gets it at once."""
        for queue in (self._resume, self._start):
            if queue:
                ticket = queue.popleft()
                ticket.granted = True
                ticket.event.set()
                return
        if self._used <= 0:
            raise RuntimeError("release() without a matching acquire()")
        self._used -= 1

    def statistics(self) -> SlotStatistics:
        return SlotStatistics(self.total, self._used, len(self._start), len(self._resume))
