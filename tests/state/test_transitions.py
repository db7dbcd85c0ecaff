"""The transition table, checked exhaustively: every pair of states is either an edge or refused,
and property-tested: random walks over the table keep its promises."""

from __future__ import annotations

import itertools
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kestra_trio.errors import IllegalTransition
from kestra_trio.state.states import TASK_ONLY, TERMINAL, State
from kestra_trio.state.transitions import ALLOWED_SOURCES, is_allowed, transition

P, R, W, S, F, C, K = (
    State.PENDING, State.RUNNING, State.WAITING, State.SUCCESS, State.FAILED, State.CANCELLED, State.SKIPPED,
)  # fmt: skip
Q = State.QUEUED

#: the edges the product promises (issue 2, section 3; SKIPPED: issue 11), written out by hand
ALLOWED = {
    (Q, R), (Q, F), (Q, C),
    (P, R), (P, W), (P, F), (P, C), (P, K),
    (W, R), (W, F), (W, C), (W, K),
    (R, W), (R, S), (R, F), (R, C),
}  # fmt: skip
PAIRS = [(a, b) for a, b in itertools.product(State, State) if a != b]
DISALLOWED = [pair for pair in PAIRS if pair not in ALLOWED]


def test_table_matches_the_documented_edges() -> None:
    table = {(source, target) for target, sources in ALLOWED_SOURCES.items() for source in sources}
    assert table == ALLOWED
    assert set(ALLOWED_SOURCES) == set(State)


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_allowed_edge(current: State, target: State) -> None:
    assert is_allowed(current, target)
    assert transition(current, target, entity="task 'a'") is target


@pytest.mark.parametrize(("current", "target"), DISALLOWED)
def test_disallowed_pair_raises(current: State, target: State) -> None:
    assert not is_allowed(current, target)
    with pytest.raises(IllegalTransition) as info:
        transition(current, target, entity="task 'a'")
    assert (info.value.current, info.value.target) == (current.value, target.value)
    assert str(info.value) == f"illegal task 'a' transition: {current.value} -> {target.value}"


@pytest.mark.parametrize("state", list(State))
def test_same_state_is_a_no_op(state: State) -> None:
    assert transition(state, state) is None


def test_terminal_set() -> None:
    assert TERMINAL == {S, F, C, K}
    assert [s for s in State if s.is_terminal] == [S, F, C, K]


@pytest.mark.parametrize("initial", [P, Q])
def test_nothing_enters_an_initial_state(initial: State) -> None:
    for state in State:
        if state != initial:
            with pytest.raises(IllegalTransition):
                transition(state, initial)


def test_a_queued_execution_is_claimed_or_ends_without_running() -> None:
    assert {target for target in State if is_allowed(Q, target)} == {R, F, C}


@pytest.mark.parametrize("source", [P, W])
def test_an_execution_is_never_skipped(source: State) -> None:
    assert TASK_ONLY == {K}
    assert is_allowed(source, K, entity="task") and not is_allowed(source, K, entity="execution")
    with pytest.raises(IllegalTransition) as info:
        transition(source, K)  # entity defaults to "execution"
    assert str(info.value) == f"illegal execution transition: {source.value} -> SKIPPED"
    assert transition(source, K, entity="task 'a'") is K


def test_a_task_that_ran_is_not_skipped() -> None:
    # run_if is decided before the first attempt: once RUNNING, a task ends otherwise
    with pytest.raises(IllegalTransition):
        transition(R, K, entity="task 'a'")


# -- properties over the whole table -----------------------------------------------------------

ENTITIES = st.sampled_from(["execution", "task 'a'"])


def _reachable(start: State, entity: str) -> set[State]:
    seen, queue = {start}, deque([start])
    while queue:
        state = queue.popleft()
        for target in State:
            if target not in seen and target != state and state not in TERMINAL and is_allowed(state, target, entity=entity):
                seen.add(target)
                queue.append(target)
    return seen


#: where each kind of entity is created: executions QUEUED, task runs PENDING
START = {"execution": Q, "task": P}


@given(entity=ENTITIES)
def test_every_reachable_state_can_still_end(entity: str) -> None:
    kind = "execution" if entity == "execution" else "task"
    for state in _reachable(START[kind], kind):
        assert _reachable(state, kind) & TERMINAL, f"{state} cannot reach a terminal state"


@given(entity=ENTITIES)
def test_what_an_execution_can_reach(entity: str) -> None:
    kind = "execution" if entity == "execution" else "task"
    # nothing enters an initial state: an execution never is PENDING, a task never QUEUED
    expected = set(State) - (TASK_ONLY | {P} if kind == "execution" else {Q})
    assert _reachable(START[kind], kind) == expected


@settings(max_examples=300)
@given(entity=ENTITIES, targets=st.lists(st.sampled_from(list(State)), max_size=30))
def test_random_walks_keep_the_table_promises(entity: str, targets: list[State]) -> None:
    """From where it is created, try any sequence of targets: a terminal state never changes,
    an initial state is never re-entered, a task-only state never reaches an execution, and
    every accepted step is an edge of the table."""
    kind = "execution" if entity == "execution" else "task"
    state = START[kind]
    for target in targets:
        try:
            moved = transition(state, target, entity=entity)
        except IllegalTransition:
            assert state in TERMINAL or not is_allowed(state, target, entity=kind)
            continue
        if moved is None:
            assert target == state
            continue
        assert state not in TERMINAL, "a terminal state changed"
        assert (state, target) in ALLOWED
        assert target not in (P, Q)
        assert not (kind == "execution" and target in TASK_ONLY)
        state = target
    # wherever the walk stopped, the run can still end
    assert _reachable(state, kind) & TERMINAL


@given(st.sampled_from(sorted(TERMINAL)), st.sampled_from(list(State)), ENTITIES)
def test_terminal_states_never_change(terminal: State, target: State, entity: str) -> None:
    if target == terminal:
        assert transition(terminal, target, entity=entity) is None
    else:
        with pytest.raises(IllegalTransition):
            transition(terminal, target, entity=entity)
