"""What `execution restart` runs again: a pure rule over the workflow and its task runs.

Without `--from`: every task of `tasks:` that did not end well (FAILED, CANCELLED, or
left unfinished by a lost engine) and every task below it that did not succeed. With
`--from TASK`: TASK and everything downstream of it, whatever their state. The rest keep
their state and stored outputs (the scheduler reuses them, see `Scheduler.reuse`).
`errors:`/`finally:` and for_each iterations are not chosen here: they run again when
their list (or their task) does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kestra_trio.errors import UsageError
from kestra_trio.model.dag import Dag
from kestra_trio.model.diagnostics import did_you_mean
from kestra_trio.model.workflow import Workflow
from kestra_trio.state.states import State

__all__ = ["NothingToRestart", "UnknownTask", "plan_restart"]

#: tasks a message lists
LISTED_TASKS = 20


class UnknownTask(UsageError):
    """The task to restart from is not one of `tasks:`. Said without naming the argument:
    the CLI calls it `--from`, the HTTP API `from_task`."""

    def __init__(self, task_id: str, tasks: Sequence[str]) -> None:
        self.task_id = task_id
        listed = ", ".join(tasks[:LISTED_TASKS]) + (f", … ({len(tasks)} in all)" if len(tasks) > LISTED_TASKS else "")
        super().__init__(f"no task {task_id!r} in the workflow's tasks{did_you_mean(task_id, tasks)}; its tasks: {listed}")


class NothingToRestart(UsageError):
    """Every task succeeded; each edge says how to name a task to run again."""

    def __init__(self) -> None:
        super().__init__("nothing to restart: every task succeeded")


def plan_restart(workflow: Workflow, rows: Sequence[Any], from_task: str | None = None) -> dict[str, State]:
    """Task id -> where it starts again (PENDING, or WAITING when it has needs).

    Raises:
        UnknownTask: `from_task` is not a task of `tasks:`.
        NothingToRestart: nothing is left to run.
    """
    dag = Dag(workflow.tasks)
    states = {row.task_id: State(row.state) for row in rows if row.parent_task_id is None}
    if from_task is not None:
        if from_task not in dag.needs:
            raise UnknownTask(from_task, list(dag.order))
        chosen = {from_task} | dag.descendants(from_task)
    else:
        bad = {tid for tid in dag.order if states.get(tid) not in (State.SUCCESS, State.SKIPPED)
               and not (states.get(tid) == State.FAILED and _allowed(workflow, tid))}
        below = set().union(*(dag.descendants(tid) for tid in bad)) if bad else set()
        chosen = bad | {tid for tid in below if states.get(tid) != State.SUCCESS}
        if not chosen:
            raise NothingToRestart()
    return {
        tid: State.WAITING if dag.needs[tid] else State.PENDING
        for tid in dag.order
        if tid in chosen and states.get(tid, State.PENDING).is_terminal
    }


def _allowed(workflow: Workflow, task_id: str) -> bool:
    return workflow.task(task_id).allow_failure
