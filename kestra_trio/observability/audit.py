"""AuditLogger: standalone audit events (retries, timeouts, cancel handling).

State changes write their own audit rows inside the state-change transaction (storage);
this is for events that are not a transition. A failed audit write is never fatal: while
the database refuses writes it is retried like every write of the run (`WriteRetry`), and
an event it still could not write once the run gave up waiting is kept (`take_unwritten`)
for the execution's final transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kestra_trio.observability.records import AuditEvent, AuditEventType
from kestra_trio.storage.ports import AuditSink
from kestra_trio.storage.write_retry import WriteRetry, is_write_refused


class AuditLogger:
    def __init__(
        self,
        sink: AuditSink,
        execution_id: str,
        on_error: Callable[[str], None],
        writes: WriteRetry | None = None,
    ) -> None:
        self._sink = sink
        self._execution_id = execution_id
        self._on_error = on_error
        self._writes = writes if writes is not None else WriteRetry(on_error=on_error)
        self._unwritten: list[AuditEvent] = []

    async def record(self, event_type: AuditEventType, **metadata: Any) -> None:
        event = AuditEvent(self._execution_id, event_type, metadata)
        try:
            await self._writes.call("audit events", self._sink.append, event)
        except Exception as exc:  # the audit trail must never stop the execution
            if is_write_refused(exc):
                self._unwritten.append(event)  # written with the execution's final state
            else:
                self._on_error(f"cannot write audit event {event_type} ({exc})")

    def take_unwritten(self) -> list[AuditEvent]:
        """The events the database refused until the run gave up waiting (oldest first)."""
        events, self._unwritten = self._unwritten, []
        return events
