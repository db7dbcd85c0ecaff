"""Progress events the engine hands to whoever shows the run (the CLI's live view or plain lines)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kestra_trio.observability.records import now_ms
from kestra_trio.state.states import State


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    execution_id: str
    task_id: str | None  # None: the execution itself
    state: State
    reason: str | None
    message: str | None = None
    attempt: int = 0
    max_attempts: int = 1
    task_type: str | None = None
    at: int = field(default_factory=now_ms)

    @classmethod
    def for_execution(cls, execution_id: str, state: State, reason: str | None, message: str | None) -> ProgressEvent:
        return cls(execution_id, None, state, reason, message)
