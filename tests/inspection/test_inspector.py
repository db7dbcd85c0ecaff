"""ExecutionInspector reads a whole execution with a fixed number of queries."""

from __future__ import annotations

from pathlib import Path

import pytest

from factories import ExecutionFactory, simple_success, task
from kestra_trio.errors import ExecutionNotFound
from kestra_trio.inspection.inspector import ExecutionInspector, TaskNotFound
from kestra_trio.storage.db import Database, open_database


async def _fan_out(db: Database, execution_id: str, n: int) -> None:
    ex = ExecutionFactory(db, execution_id)
    await ex.create([task("root"), *[task(f"t{i:03d}", needs=["root"]) for i in range(n - 1)]])
    await ex.start(0)
    await ex.run_task("root", start=0, end=10)
    for i in range(n - 1):
        await ex.run_task(f"t{i:03d}", start=20 + i, end=40 + i)
    await ex.logs([(20 + i, "INFO", f"t{i:03d}", f"line {i}") for i in range(n - 1)])
    await ex.finish("SUCCESS", at=1000 + n)


def _count_selects(db: Database) -> list[str]:
    statements: list[str] = []

    def trace(sql: str) -> None:
        if sql.lstrip().upper().startswith("SELECT"):
            statements.append(sql)

    db._raw.set_trace_callback(trace)
    return statements


@pytest.mark.parametrize("task_id", [None, "t005"])
async def test_query_count_does_not_grow_with_tasks(tmp_path: Path, task_id: str | None) -> None:
    async with open_database(tmp_path / "k.db") as db:
        await _fan_out(db, "small", 10)
        await _fan_out(db, "large", 200)
        inspector = ExecutionInspector(db)
        counts = {}
        for execution_id in ("small", "large"):
            statements = _count_selects(db)
            snapshot = await inspector.snapshot(execution_id, task_id=task_id)
            db._raw.set_trace_callback(None)
            counts[execution_id] = len(statements)
        assert len(snapshot.tasks) == 200
        assert len(snapshot.attempts) == 200
        assert snapshot.log_count == 199
    # resolve id + execution + task runs + attempts + audit (+ one task's last lines)
    # + restricted mode's two: each task's sandbox, the refusals
    assert counts["small"] == counts["large"] == (7 if task_id is None else 8)


async def test_snapshot_contents(tmp_path: Path) -> None:
    async with open_database(tmp_path / "k.db") as db:
        await simple_success(db, "ex-success")
        snapshot = await ExecutionInspector(db).snapshot("ex-s", task_id="b")  # unique prefix
    assert snapshot.execution.id == "ex-success"
    assert [t.task_id for t in snapshot.tasks] == ["a", "b"]
    assert snapshot.attempts_by_task["b"][0].state == "SUCCESS"
    assert [r.message for r in snapshot.task_logs] == ["slow disk", "rows=3"]
    assert snapshot.log_count == 4
    assert not snapshot.running
    types = [e.event_type for e in snapshot.audit]
    assert types[0] == "CREATED" and types.count("STATE_CHANGE") == 6


async def test_unknown_execution_and_task(tmp_path: Path) -> None:
    async with open_database(tmp_path / "k.db") as db:
        await simple_success(db, "ex-success")
        inspector = ExecutionInspector(db)
        with pytest.raises(ExecutionNotFound, match="^Execution not found: nope$"):
            await inspector.snapshot("nope")
        with pytest.raises(TaskNotFound):
            await inspector.snapshot("ex-success", task_id="zzz")


async def test_a_snapshot_without_values_leaves_inputs_and_outputs_unread(tmp_path: Path) -> None:
    async with open_database(tmp_path / "k.db") as db:
        ex = ExecutionFactory(db, "ex-big")
        await ex.create([task("a")])
        await ex.start(0)
        await ex.run_task("a", start=10, end=20, inputs={"blob": "x" * 100_000}, outputs={"n": 1})
        await ex.finish("SUCCESS", at=30)
        inspector = ExecutionInspector(db)
        full = await inspector.snapshot("ex-big")
        bare = await inspector.snapshot("ex-big", with_values=False)
    assert full.tasks[0].inputs == {"blob": "x" * 100_000} and full.tasks[0].outputs == {"n": 1}
    assert (bare.tasks[0].inputs, bare.tasks[0].outputs) == (None, None)
    assert bare.tasks[0].state == "SUCCESS" and bare.tasks[0].duration_ms == full.tasks[0].duration_ms
