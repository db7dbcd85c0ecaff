"""The one transition table. Sans-IO: storage enforces the same table with guarded UPDATEs."""

from __future__ import annotations

from kestra_trio.errors import IllegalTransition
from kestra_trio.state.states import TERMINAL, State

#: target state -> states it may be entered from
ALLOWED_SOURCES: dict[State, frozenset[State]] = {
    # executions are created QUEUED (tasks PENDING or WAITING): nothing enters either
    State.QUEUED: frozenset(),
    State.PENDING: frozenset(),
    State.WAITING: frozenset({State.PENDING, State.RUNNING}),
    # QUEUED -> RUNNING is the claim: a worker takes the execution
    State.RUNNING: frozenset({State.QUEUED, State.PENDING, State.WAITING}),
    State.SUCCESS: frozenset({State.RUNNING}),
    # a queued execution ends without running when it is cancelled, or its engine is lost
    State.FAILED: frozenset({State.QUEUED, State.PENDING, State.WAITING, State.RUNNING}),
    State.CANCELLED: frozenset({State.QUEUED, State.PENDING, State.WAITING, State.RUNNING}),
}


def is_allowed(current: State, target: State) -> bool:
    return current in ALLOWED_SOURCES[target]


def transition(current: State, target: State, *, entity: str = "execution") -> State | None:
    """Return `target` if the change is allowed, None if it is a no-op (same state).

    Raises:
        IllegalTransition: the edge is not in the table (terminal states never change).
    """
    if current == target:
        return None
    if current in TERMINAL or not is_allowed(current, target):
        raise IllegalTransition(current.value, target.value, entity)
    return target
