"""Dag and find_cycles: order, reachability, and linear behaviour on big graphs."""

from __future__ import annotations


import pytest

from kestra_trio.model.dag import Dag, find_cycles
from kestra_trio.model.workflow import TaskSpec


def tasks(**needs: tuple[str, ...] | list[str]) -> list[TaskSpec]:
    return [TaskSpec(id=name.replace("_", "-"), type="core/shell.run", needs=tuple(deps)) for name, deps in needs.items()]


DIAMOND = tasks(a=(), b=("a",), c=("a",), d=("b", "c"), e=())


def test_needs_dependents_roots() -> None:
    dag = Dag(DIAMOND)
    assert dag.needs["d"] == ("b", "c")
    assert dag.dependents == {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": [], "e": []}
    assert dag.roots() == ["a", "e"]
    assert len(dag) == 5


def test_topological_order_is_stable_in_workflow_order() -> None:
    assert Dag(DIAMOND).topological_order() == ["a", "b", "c", "d", "e"]
    # a task listed before what it needs comes after it, then ahead of later ready tasks
    assert Dag(tasks(z=("y",), y=(), x=())).topological_order() == ["y", "z", "x"]


def test_topological_order_refuses_a_cycle() -> None:
    with pytest.raises(ValueError, match="cycle"):
        Dag(tasks(a=("b",), b=("a",))).topological_order()


def test_descendants_and_ancestors() -> None:
    dag = Dag(DIAMOND)
    assert dag.descendants("a") == {"b", "c", "d"}
    assert dag.descendants("d") == set()
    assert dag.ancestors("d") == {"a", "b", "c"}
    assert dag.ancestors("e") == set()


@pytest.mark.parametrize(
    ("needs", "cycles"),
    [
        ({"a": [], "b": ["a"]}, []),
        ({"a": ["a"]}, [["a", "a"]]),
        ({"a": ["b"], "b": ["a"]}, [["a", "b", "a"]]),
        ({"x": [], "a": ["x", "c"], "b": ["a"], "c": ["b"]}, [["a", "c", "b", "a"]]),
        # two separate cycles, one reported each, in workflow order
        ({"p": ["q"], "q": ["p"], "r": ["s"], "s": ["r"]}, [["p", "q", "p"], ["r", "s", "r"]]),
        # unknown needs are ignored here (validation reports them)
        ({"a": ["ghost"]}, []),
        # one group with several cycles: the shortest through the first task
        ({"a": ["b", "c"], "b": ["c"], "c": ["a"]}, [["a", "c", "a"]]),
    ],
)
def test_find_cycles(needs: dict[str, list[str]], cycles: list[list[str]]) -> None:
    assert find_cycles(needs) == cycles


def test_ten_thousand_task_chain_is_iterative() -> None:
    """No recursion limit is hit; the time it takes is scripts/bench_model.py's."""
    count = 10_000
    chain = [TaskSpec(id="t0", type="core/shell.run")] + [
        TaskSpec(id=f"t{i}", type="core/shell.run", needs=(f"t{i - 1}",)) for i in range(1, count)
    ]
    dag = Dag(chain)
    assert dag.topological_order()[-1] == f"t{count - 1}"
    assert len(dag.descendants("t0")) == count - 1
    assert len(dag.ancestors(f"t{count - 1}")) == count - 1
    assert find_cycles(dag.needs) == []
    # closing the chain makes one 10,000-task cycle, still found without recursion
    cycle = find_cycles({**dag.needs, "t0": (f"t{count - 1}",)})
    assert len(cycle) == 1 and len(cycle[0]) == count + 1


def test_wide_fan_out_and_fan_in() -> None:
    width = 10_000
    specs = [TaskSpec(id="root", type="core/shell.run")]
    specs += [TaskSpec(id=f"w{i}", type="core/shell.run", needs=("root",)) for i in range(width)]
    specs.append(TaskSpec(id="join", type="core/shell.run", needs=tuple(f"w{i}" for i in range(width))))
    dag = Dag(specs)
    order = dag.topological_order()
    assert order[0] == "root" and order[-1] == "join" and order[1:3] == ["w0", "w1"]
    assert len(dag.dependents["root"]) == width
    assert len(dag.descendants("root")) == width + 1
    assert len(dag.ancestors("join")) == width + 1
