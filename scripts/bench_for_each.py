#!/usr/bin/env python
"""for_each benchmark (issue 11): engine cost per iteration vs per plain task.

Two workflows of N runs of `true` (core/shell.run), each run through the real CLI as

    kestra-trio run wf.yaml --db <fresh tmp>/bench.db --max-parallel 8

* `for_each`: one task with `for_each: [0 .. N-1]` and `concurrency: 8` (N task runs `each[i]`);
* `plain`:    N independent tasks (`--max-parallel 8` runs 8 at once).

Reported (median of --repeat runs): wall time and per-run cost (wall - wall of a 1-task
workflow) / N for both, and their ratio (target: for_each within 1.5x of plain). Every run
must end SUCCESS with N successful task runs, else the script exits 1.

    .venv/bin/python scripts/bench_for_each.py [--items 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_common import CLI, machine_description, median  # noqa: E402


def workflow(kind: str, n: int) -> str:
    if kind == "for_each":
        return (
            "id: bench-for-each\ntasks:\n  - id: each\n    type: core/shell.run\n"
            f"    for_each: {json.dumps(list(range(n)))}\n    concurrency: 8\n    inputs: {{command: \"true\"}}\n"
        )
    tasks = "".join(f"  - {{id: t{i}, type: core/shell.run, inputs: {{command: \"true\"}}}}\n" for i in range(n))
    return f"id: bench-plain\ntasks:\n{tasks}"


def run_once(kind: str, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wf.yaml"
        path.write_text(workflow(kind, n))
        db = Path(tmp) / "bench.db"
        start = time.perf_counter()
        done = subprocess.run([CLI, "run", str(path), "--db", str(db), "--max-parallel", "8"],
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"{kind} N={n}: exit {done.returncode}: {done.stderr[-500:]}")
        with sqlite3.connect(db) as conn:
            ok = conn.execute("SELECT COUNT(*) FROM task_runs WHERE state = 'SUCCESS' AND task_id != 'each'").fetchone()[0]
        if ok != n:
            sys.exit(f"{kind} N={n}: {ok} successful task runs, expected {n}")
        return wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(machine_description())
    base = median([run_once("plain", 1) for _ in range(args.repeat)])
    rows = {}
    for kind in ("plain", "for_each"):
        walls = []
        for _ in range(args.repeat):  # interleaved would be fairer under load; repeat is the guard
            walls.append(run_once(kind, args.items))
        wall = median(walls)
        rows[kind] = (wall, (wall - base) / args.items * 1000)
        print(f"{kind:9} N={args.items}: wall {wall:.2f}s, per run {rows[kind][1]:.2f} ms (1-task run: {base:.2f}s)")
    ratio = rows["for_each"][1] / rows["plain"][1]
    print(f"for_each / plain per-run cost: {ratio:.2f}x (target <= 1.5x): {'ok' if ratio <= 1.5 else 'OVER'}")


if __name__ == "__main__":
    main()
