"""Task metrics: what a task reported with `::{"metrics": [...]}::` lines, one row per metric."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kestra_trio.storage.rows import _json, typed

_COLUMNS = "task_id, attempt, name, type, value, tags, recorded_at"


@dataclass(frozen=True, slots=True)
class MetricRow:
    task_id: str
    attempt: int
    name: str
    type: str | None
    value: float
    tags: dict[str, Any]
    recorded_at: int

    @classmethod
    def from_row(cls, row: tuple) -> MetricRow:
        values = list(row)
        values[4] = float(values[4]) if values[4] is not None else 0.0
        values[5] = _json(values[5], {})
        return cls(*values)


def insert_metrics_sync(
    raw: sqlite3.Connection, execution_id: str, task_id: str, attempt: int, metrics: Sequence[Any], at: int
) -> None:
    """`metrics`: `plugin_runtime.directives.Metric` values (name, type, value, tags), already masked."""
    raw.executemany(
        "INSERT INTO task_metrics (execution_id, task_id, attempt, name, type, value, tags, recorded_at) "
        "VALUES (?,?,?,?,?,?,?,?)",
        [
            (execution_id, task_id, attempt, m.name, m.type, m.value,
             json.dumps(m.tags, ensure_ascii=False) if m.tags else None, at)
            for m in metrics
        ],
    )


def metric_rows(raw: sqlite3.Connection, execution_id: str) -> list[MetricRow]:
    """Every metric of the execution, task by task, in the order they were reported."""
    return [
        MetricRow.from_row(r)
        for r in raw.execute(
            f"SELECT {typed(_COLUMNS)} FROM task_metrics INDEXED BY idx_metrics_execution "
            "WHERE execution_id = ? ORDER BY task_id, id",
            (execution_id,),
        )
    ]
