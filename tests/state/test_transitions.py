"""The transition table, checked exhaustively: every pair of states is either an edge or refused."""

from __future__ import annotations

import itertools

import pytest

from kestra_trio.errors import IllegalTransition
from kestra_trio.state.states import TERMINAL, State
from kestra_trio.state.transitions import ALLOWED_SOURCES, is_allowed, transition

P, R, W, S, F, C = State.PENDING, State.RUNNING, State.WAITING, State.SUCCESS, State.FAILED, State.CANCELLED
Q = State.QUEUED

#: the edges the product promises (issue 2, section 3), written out by hand
ALLOWED = {
    (Q, R), (Q, F), (Q, C),
    (P, R), (P, W), (P, F), (P, C),
    (W, R), (W, F), (W, C),
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
    assert transition(current, target) is target


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


@pytest.mark.parametrize(("terminal", "target"), [(t, s) for t in sorted(TERMINAL) for s in State if s != t])
def test_terminal_states_never_change(terminal: State, target: State) -> None:
    with pytest.raises(IllegalTransition):
        transition(terminal, target)


def test_terminal_set() -> None:
    assert TERMINAL == {S, F, C}
    assert [s for s in State if s.is_terminal] == [S, F, C]


@pytest.mark.parametrize("initial", [P, Q])
def test_nothing_enters_an_initial_state(initial: State) -> None:
    for state in State:
        if state != initial:
            with pytest.raises(IllegalTransition):
                transition(state, initial)


def test_a_queued_execution_is_claimed_or_ends_without_running() -> None:
    assert {target for target in State if is_allowed(Q, target)} == {R, F, C}


def test_every_non_terminal_state_can_end() -> None:
    for state in set(State) - TERMINAL:
        assert any(transition(state, end) for end in TERMINAL if is_allowed(state, end))
