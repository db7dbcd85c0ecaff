"""The one transition table. Sans-IO: storage enforces the same table with guarded UPDATEs."""

from __future__ import annotations

from kestra_trio.errors import IllegalTransition
from kestra_trio.state.states import TASK_ONLY, TERMINAL, State

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
    # decided before it starts (run_if false, or needed outputs missing); task runs only
    State.SKIPPED: frozenset({State.PENDING, State.WAITING}),
}


def is_allowed(current: State, target: State, *, entity: str = "task") -> bool:
    """Whether the table has this edge; `entity="execution"` refuses task-only states."""
    if entity == "execution" and (target in TASK_ONLY or current in TASK_ONLY):
        return False
    return current in ALLOWED_SOURCES[target]


def transition(current: State, target: State, *, entity: str = "execution") -> State | None:
    """Return `target` if the change is allowed, None if it is a no-op (same state).

    `entity` is "execution" for an execution (it can never be SKIPPED), anything else
    (e.g. "task 'a'") for a task run; it also names the entity in the error.

    Raises:
        IllegalTransition: the edge is not in the table (terminal states never change).
    """
    if current == target:
        return None
    if current in TERMINAL or not is_allowed(current, target, entity="execution" if entity == "execution" else "task"):
        raise IllegalTransition(current.value, target.value, entity)
    return target
