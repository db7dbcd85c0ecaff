"""The task graph: who needs whom, in which order tasks can run, what a failure blocks.

Everything here is iterative and linear in tasks + edges (the topological order adds a
log factor for its stable heap), so a 10,000-task chain neither recurses nor goes
quadratic. Edges point from a task to the tasks it `needs`.
"""

from __future__ import annotations

import enum
import heapq
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from kestra_trio.model.workflow import TaskSpec

__all__ = ["Dag", "Upstream", "Verdict", "VerdictKind", "classify_upstream", "find_cycles", "reachable"]


class Upstream(enum.Enum):
    """How a finished task counts for the tasks that need it."""

    DONE = "done"  # SUCCESS: its dependents run, its outputs exist
    DONE_WITHOUT_OUTPUTS = "done_without_outputs"  # SKIPPED, or FAILED with allow_failure
    BLOCKING = "blocking"  # FAILED (failure not allowed) or CANCELLED: its dependents do not run


def classify_upstream(state: str, *, allow_failure: bool = False) -> Upstream | None:
    """A task's terminal state as its dependents see it; None while it is not finished.

    `state` is a `State` value ("SUCCESS", "SKIPPED" ...): the model does not import the
    state package, and a StrEnum compares equal to its text.
    """
    if state == "SUCCESS":
        return Upstream.DONE
    if state == "SKIPPED" or (state == "FAILED" and allow_failure):
        return Upstream.DONE_WITHOUT_OUTPUTS
    if state in ("FAILED", "CANCELLED"):
        return Upstream.BLOCKING
    return None


class VerdictKind(enum.Enum):
    RUN = "run"
    SKIP = "skip"  # end SKIPPED (reason OUTPUTS_UNAVAILABLE): it uses outputs that do not exist
    BLOCK = "block"  # end CANCELLED (reason UPSTREAM_FAILED)


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    #: the task that caused a SKIP or BLOCK
    cause: str | None = None

    @property
    def message(self) -> str:
        if self.kind is VerdictKind.BLOCK:
            return f"upstream task {self.cause!r} failed"
        if self.kind is VerdictKind.SKIP:
            return f"it uses outputs of task {self.cause!r}, which has none (it was skipped or its failure was allowed)"
        return "its needs are done"


class Dag:
    """A validated workflow's dependency graph (build it only from validated tasks)."""

    def __init__(self, tasks: Sequence[TaskSpec]) -> None:
        self._specs = {task.id: task for task in tasks}
        self._outputs_used: dict[str, frozenset[str]] = {}
        self.order: tuple[str, ...] = tuple(task.id for task in tasks)
        self._index = {task_id: index for index, task_id in enumerate(self.order)}
        self.needs: dict[str, tuple[str, ...]] = {task.id: tuple(task.needs) for task in tasks}
        self.dependents: dict[str, list[str]] = {task_id: [] for task_id in self.order}
        for task in tasks:  # workflow order, so each dependents list is in workflow order too
            for need in task.needs:
                self.dependents[need].append(task.id)

    def __len__(self) -> int:
        return len(self.order)

    def roots(self) -> list[str]:
        """Tasks that need nothing, in workflow order: they start first."""
        return [task_id for task_id in self.order if not self.needs[task_id]]

    def topological_order(self) -> list[str]:
        """Every task after all it needs; among ready tasks, workflow order wins (stable).

        Raises:
            ValueError: the graph has a cycle (validation rejects those before).
        """
        waiting = {task_id: len(set(needs)) for task_id, needs in self.needs.items()}
        ready = [self._index[task_id] for task_id in self.order if waiting[task_id] == 0]
        heapq.heapify(ready)
        result: list[str] = []
        while ready:
            task_id = self.order[heapq.heappop(ready)]
            result.append(task_id)
            for dependent in dict.fromkeys(self.dependents[task_id]):
                waiting[dependent] -= 1
                if waiting[dependent] == 0:
                    heapq.heappush(ready, self._index[dependent])
        if len(result) != len(self.order):
            raise ValueError("the task graph has a dependency cycle")
        return result

    def descendants(self, task_id: str) -> set[str]:
        """Tasks that (transitively) need `task_id`: what a failure of it leaves UPSTREAM_FAILED."""
        return reachable(self.dependents, [task_id])

    def ancestors(self, task_id: str) -> set[str]:
        """Tasks `task_id` (transitively) needs: the only ones whose outputs it may use."""
        return reachable(self.needs, [task_id])

    def uses_outputs_of(self, task_id: str) -> frozenset[str]:
        """Tasks whose outputs `task_id` reads without a fallback: in its inputs, run_if and
        for_each, not under `| default(...)` or `is defined` (cached)."""
        cached = self._outputs_used.get(task_id)
        if cached is None:
            from kestra_trio.model.templates import find_references

            spec = self._specs[task_id]
            values = [spec.inputs, spec.run_if]
            if spec.for_each is not None:
                values.append(spec.for_each.items)
            refs = find_references(values)
            cached = frozenset(str(ref.name) for ref in refs if ref.root == "tasks" and ref.parts and not ref.guarded)
            self._outputs_used[task_id] = cached
        return cached

    def verdict(self, task_id: str, upstream: Mapping[str, Upstream]) -> Verdict:
        """Whether a task whose needs have all finished runs, is skipped or is blocked.

        `upstream` says how each finished task counts (`classify_upstream`); it may hold
        every finished task of the run. The rules, in order:

        1. a need that failed (failure not allowed) or was cancelled blocks it;
        2. it is skipped when it reads outputs of a task that has none — one that was
           SKIPPED or whose failure was allowed — except under `| default(...)`;
        3. otherwise it runs: a SKIPPED need counts as done (as if it had succeeded).
        """
        for need in self.needs[task_id]:
            if upstream.get(need) is Upstream.BLOCKING:
                return Verdict(VerdictKind.BLOCK, need)
        for used in sorted(self.uses_outputs_of(task_id), key=self._position):
            if upstream.get(used) is Upstream.DONE_WITHOUT_OUTPUTS:
                return Verdict(VerdictKind.SKIP, used)
        return Verdict(VerdictKind.RUN)

    def _position(self, task_id: str) -> int:
        return self._index.get(task_id, len(self._index))


def reachable(edges: Mapping[str, Iterable[str]], starts: Iterable[str]) -> set[str]:
    """Nodes reachable from `starts` by one or more edges (the starts only if on a cycle)."""
    seen: set[str] = set()
    queue = deque(starts)
    while queue:
        for neighbour in edges.get(queue.popleft(), ()):
            if neighbour not in seen:
                seen.add(neighbour)
                queue.append(neighbour)
    return seen


def find_cycles(needs: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of tasks, e.g. `[["a", "b", "c", "a"]]`.

    Each cycle starts and ends at its group's first task in mapping order, and is the
    shortest cycle through it; a task that needs itself gives `["a", "a"]`. Needs naming
    unknown tasks are ignored (validation reports those separately). Listing one cycle per
    group keeps the output small: breaking it changes the graph, and the next run shows
    any cycle left.
    """
    graph = {node: [n for n in targets if n in needs] for node, targets in needs.items()}
    position = {node: index for index, node in enumerate(graph)}
    cycles = []
    for component in _strongly_connected(graph):
        start = min(component, key=position.__getitem__)
        if len(component) == 1 and start not in graph[start]:
            continue
        cycles.append(_shortest_cycle(graph, start, component))
    cycles.sort(key=lambda cycle: position[cycle[0]])
    return cycles


def _strongly_connected(graph: Mapping[str, list[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (an explicit stack instead of recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = graph[node]
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if work:  # propagate to the parent once all children are done
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _shortest_cycle(graph: Mapping[str, list[str]], start: str, component: set[str]) -> list[str]:
    """Breadth-first search from `start` back to itself, staying inside its component."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in graph[node]:
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start, *reversed(path[:-1]), start] if node != start else [start, start]
            if target in component and target not in parent:
                parent[target] = node
                queue.append(target)
    raise AssertionError("a strongly connected component always has a cycle")  # pragma: no cover
