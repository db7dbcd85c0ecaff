"""AuditLogger: standalone audit events (retries, timeouts, cancel handling).

State changes write their own audit rows inside the state-change transaction (storage);
this is for events that are not a transition. A failed audit write is reported, never fatal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kestra_trio.observability.records import AuditEvent, AuditEventType
from kestra_trio.storage.ports import AuditSink


class AuditLogger:
    def __init__(self, sink: AuditSink, execution_id: str, on_error: Callable[[str], None]) -> None:
        self._sink = sink
        self._execution_id = execution_id
        self._on_error = on_error

    async def record(self, event_type: AuditEventType, **metadata: Any) -> None:
        try:
            await self._sink.append(AuditEvent(self._execution_id, event_type, metadata))
        except Exception as exc:  # the audit trail must never stop the execution
            self._on_error(f"cannot write audit event {event_type} ({exc})")
