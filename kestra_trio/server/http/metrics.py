"""`GET /metrics`: Prometheus text format, read from the database and this process's collector."""

from __future__ import annotations

import sqlite3

from kestra_trio.query.executions import STATES
from kestra_trio.server.http.context import ApiContext

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def _counts(raw: sqlite3.Connection) -> tuple[dict[str, int], int]:
    by_state = dict(raw.execute("SELECT state, count(*) FROM executions GROUP BY state").fetchall())
    running_tasks = raw.execute("SELECT count(*) FROM task_runs WHERE state = 'RUNNING'").fetchone()[0]
    return by_state, running_tasks


async def metrics_text(ctx: ApiContext) -> str:
    by_state, running_tasks = await ctx.db.run(_counts)
    stats = ctx.service.collector.statistics()
    worker = ctx.service.worker
    lines = [
        "# HELP kestra_trio_executions Executions in the database, by state.",
        "# TYPE kestra_trio_executions gauge",
        *(f'kestra_trio_executions{{state="{state}"}} {by_state.get(state, 0)}' for state in (*STATES, "SKIPPED")
          if state in STATES or state in by_state),
        "# HELP kestra_trio_queue_depth Executions waiting to be claimed (QUEUED).",
        "# TYPE kestra_trio_queue_depth gauge",
        f"kestra_trio_queue_depth {by_state.get('QUEUED', 0)}",
        "# HELP kestra_trio_running_executions Executions this server runs now.",
        "# TYPE kestra_trio_running_executions gauge",
        f"kestra_trio_running_executions {len(worker.running) if worker is not None else 0}",
        "# HELP kestra_trio_running_tasks Tasks RUNNING in the database (every engine on it).",
        "# TYPE kestra_trio_running_tasks gauge",
        f"kestra_trio_running_tasks {running_tasks}",
        "# HELP kestra_trio_log_lines_written_total Log lines this server committed to the database.",
        "# TYPE kestra_trio_log_lines_written_total counter",
        f"kestra_trio_log_lines_written_total {stats.flushed}",
        "# HELP kestra_trio_log_lines_lost_total Log lines that could not be written (each loss is recorded with its execution).",
        "# TYPE kestra_trio_log_lines_lost_total counter",
        f"kestra_trio_log_lines_lost_total {stats.lost}",
        "# HELP kestra_trio_log_flush_seconds Time spent committing log batches.",
        "# TYPE kestra_trio_log_flush_seconds summary",
        f"kestra_trio_log_flush_seconds_sum {stats.flush_seconds:.6f}",
        f"kestra_trio_log_flush_seconds_count {stats.batches}",
        "# HELP kestra_trio_server_draining 1 while the server shuts down.",
        "# TYPE kestra_trio_server_draining gauge",
        f"kestra_trio_server_draining {int(ctx.stopping)}",
    ]
    return "\n".join(lines) + "\n"
