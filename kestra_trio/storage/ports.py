"""The storage ports: what the service, the engine and the readers need from a database.

SQLite (`storage.executions`, `storage.queue`, `storage.logs`, `storage.audit`,
`storage.workflows`) is the only implementation today. Each port is written so a PostgreSQL
one can do the same with its own tools:

- `Queue.claim` is one transaction: pick the oldest QUEUED executions of the worker's queues
  and make them RUNNING for that worker. SQLite serialises writers (BEGIN IMMEDIATE), so a
  plain SELECT + guarded UPDATE is enough; PostgreSQL would `UPDATE … WHERE id IN (SELECT id …
  ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT n) RETURNING …` so that workers on many
  hosts never wait on each other's rows.
- Wake-ups: a worker in the process that enqueued is poked at once (`Worker.poke`); other
  processes are found by polling (`WORKER_POLL_SECONDS`). PostgreSQL would LISTEN on a
  channel that `enqueue` NOTIFYs in its transaction.
- Liveness: a claim records the worker's id, pid and host, and `heartbeat` moves
  `heartbeat_at` while the worker lives. On one host a dead pid is proof enough; across
  hosts a stale heartbeat is.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kestra_trio.observability.records import AuditEvent, LogEntry, LostEntries
from kestra_trio.storage.executions import DEFAULT_QUEUE as DEFAULT_QUEUE
from kestra_trio.storage.executions import CancelRequest, ChangeResult, NewExecution, NewTaskRun, StateChange
from kestra_trio.storage.rows import AttemptRow, ExecutionRow, TaskRunRow

@dataclass(frozen=True)
class WorkerIdentity:
    """Who claims: a random id per service instance, plus the process that runs it."""

    worker_id: str = field(default_factory=lambda: secrets.token_hex(6))
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)

    @property
    def private_queue(self) -> str:
        """A queue only this worker serves: executions pinned to this process."""
        return f"local:{self.worker_id}"


class LogSink(Protocol):
    """Where the log collector writes its batches."""

    async def insert_batch(self, entries: Sequence[LogEntry]) -> None: ...

    async def record_lost(self, lost: Sequence[LostEntries], entries: Sequence[LogEntry]) -> None:
        """Store an ERROR entry per loss (at the place of the gap) and add the counts to the
        executions, then `entries`, in one transaction."""
        ...


class AuditSink(Protocol):
    """Append-only audit events that are not part of a state change."""

    async def append(self, *events: AuditEvent) -> None: ...


class ExecutionRepo(Protocol):
    """Executions, task runs, attempts, cancel requests: guarded state changes with their audit."""

    async def apply(self, *changes: StateChange) -> list[ChangeResult]: ...

    async def get(self, execution_id: str) -> ExecutionRow | None: ...

    async def resolve_id(self, text: str) -> str: ...

    async def request_cancel(
        self, execution_id: str, requested_by: str, reason: str | None
    ) -> tuple[ExecutionRow, bool]: ...

    async def take_cancel_requests(self, execution_id: str) -> list[CancelRequest]: ...

    async def pending_cancel_requests(self, execution_id: str) -> list[CancelRequest]:
        """A read: it works while the database refuses writes."""
        ...

    async def mark_cancel_requests_handled(self, execution_id: str, ids: Sequence[int]) -> None: ...

    async def pending_cancels(self, execution_ids: Sequence[str]) -> list[str]: ...

    async def unfinished_on_host(self, host: str) -> list[tuple[str, int | None]]: ...

    async def task_runs(self, execution_id: str) -> list[TaskRunRow]: ...

    async def attempts(self, execution_id: str, task_id: str | None = None) -> list[AttemptRow]: ...


class Queue(Protocol):
    """Enqueue / claim / heartbeat / release: how executions reach a worker."""

    async def enqueue(self, new: NewExecution, tasks: Sequence[NewTaskRun], *, at: int | None = None) -> None:
        """Create the execution QUEUED (with its task runs and CREATED + QUEUED audit events)."""
        ...

    async def claim(self, worker: WorkerIdentity, queues: Sequence[str], *, limit: int = 1) -> list[ExecutionRow]:
        """Up to `limit` QUEUED executions of `queues`, oldest first, now RUNNING for `worker`."""
        ...

    async def heartbeat(self, worker: WorkerIdentity, execution_ids: Sequence[str]) -> None:
        """The worker still runs these executions."""
        ...

    async def release(self, worker: WorkerIdentity, execution_id: str) -> None:
        """The worker is done with the execution (its terminal state is already written)."""
        ...

    async def cancel_queued(self, execution_id: str, by: str, reason: str) -> bool:
        """End a QUEUED execution as CANCELLED without running it; False if it is not QUEUED."""
        ...
