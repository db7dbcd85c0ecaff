#!/usr/bin/env python
"""Read-side benchmark (issue 6, targets 4, 5, 7): the real CLI on large generated executions.

Setup (not timed), in one fresh database created by `open_database` (engine schema/pragmas):
* two executions with 100,000 and 1,000,000 log entries (100 tasks, plugin source, the
  engine's per-line metadata), inserted with raw sqlite3 `executemany`;
* a 1,000-task execution made by the real engine (`kestra-trio run` of a 1 -> 998 -> 1 DAG,
  one line per task), so task runs, attempts and audit rows have their real shape; plus a
  20-task one to check that `inspect` issues a constant number of queries.

Timed (median of --repeat, each a subprocess of the venv's `kestra-trio`, output to a file):
* `execution logs <id> --db DB > file` (text and --jsonl): wall, lines/s, peak RSS (ru_maxrss
  from wait4, same as /usr/bin/time -v); the output line count is checked;
* `execution inspect <id>` (+ --json, --timeline) on the 1,000-task execution;
* `kestra-trio --help`, `kestra-trio execution logs --help`.
A failing command is reported as "error: ..." in the table instead of stopping the script.

    .venv/bin/python scripts/bench_queries.py            # 3 repetitions
    .venv/bin/python scripts/bench_queries.py --quick    # no 1M execution, 1 repetition
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trio  # noqa: E402

from _bench_common import (  # noqa: E402
    CLI,
    fmt,
    median,
    print_header,
    print_table,
    run_measured,
    short_error,
)

INSERT = (
    "INSERT INTO execution_logs (execution_id, task_id, timestamp, level, source, message, metadata) "
    "VALUES (?,?,?,?,?,?,?)"
)
META = json.dumps({"plugin": "core/shell", "action": "run", "attempt": 1, "stream": "stdout"}, separators=(",", ":"))


async def _create_db(path: Path) -> None:
    from kestra_trio.storage.db import open_database

    async with open_database(path):
        pass


def add_log_execution(path: Path, exec_id: str, n: int, tasks: int = 100) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA synchronous = NORMAL")
    base = int(time.time() * 1000) - n  # recent: an engine start's retention cleanup must not purge it
    con.execute("BEGIN IMMEDIATE")
    con.execute(
        "INSERT INTO executions (id, workflow_id, namespace, state, reason_code, created_at, started_at, ended_at, "
        "updated_at, log_entry_count, task_count) VALUES (?, 'bench-logs', 'bench', 'SUCCESS', 'COMPLETED', ?, ?, ?, ?, ?, ?)",
        (exec_id, base, base, base + n, base + n, n, tasks),
    )
    per_task = n // tasks
    batch = []
    for i in range(n):
        t = i // per_task
        # 8 parallel tasks interleave in time, as in a real run
        batch.append((exec_id, f"t{t:04d}", base + (i // 8), "INFO", "plugin:core/shell.run", f"line {i % per_task} of task t{t:04d}", META))
        if len(batch) == 10_000:
            con.executemany(INSERT, batch)
            batch.clear()
    if batch:
        con.executemany(INSERT, batch)
    con.execute("COMMIT")
    con.close()


def dag_yaml(n: int) -> str:
    mids = [f"t{i:04d}" for i in range(1, n - 1)]
    out = [f"id: bench-inspect-{n}", "namespace: bench", "tasks:"]
    for tid, needs in [("root", None), *[(m, ["root"]) for m in mids], ("join", mids)]:
        out += [f"  - id: {tid}", "    type: core/shell.run"]
        if needs:
            out.append(f"    needs: [{', '.join(needs)}]")
        out += ["    inputs:", f"      command: 'echo done {tid}'"]
    return "\n".join(out) + "\n"


def run_dag(work: Path, db: Path, n: int) -> str | None:
    wf = work / f"dag{n}.yaml"
    wf.write_text(dag_yaml(n))
    out = work / f"dag{n}.out"
    r = run_measured([CLI, "run", str(wf), "--db", str(db), "--max-parallel", "8"], stdout=out, timeout=600)
    m = re.search(r"Execution ([0-9a-f]+) created", out.read_text(errors="replace"))
    if r.returncode != 0 or not m:
        print(f"  cannot create the {n}-task execution: {short_error(r)}", file=sys.stderr)
        return m.group(1) if m else None
    return m.group(1)


def count_queries(db: Path, exec_id: str) -> int | str:
    """SQL statements the inspector runs for one snapshot (sqlite3 trace callback)."""
    try:
        from kestra_trio.inspection.inspector import ExecutionInspector
        from kestra_trio.storage.db import open_database
    except Exception as exc:  # pragma: no cover
        return f"error: {exc}"
    count = [0]

    async def main():
        async with open_database(db, must_exist=True) as database:
            database._raw.set_trace_callback(lambda _sql: count.__setitem__(0, count[0] + 1))
            await ExecutionInspector(database).snapshot(exec_id)
            database._raw.set_trace_callback(None)

    try:
        trio.run(main)
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"
    return count[0]


def count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def timed(argv: list[str], repeat: int, out: Path, expect_lines: int | None = None) -> dict:
    walls, rss = [], []
    for _ in range(repeat):
        r = run_measured(argv, stdout=out, timeout=300)
        if r.returncode != 0:
            return {"error": short_error(r)}
        if expect_lines is not None:
            got = count_lines(out)
            if got != expect_lines:
                return {"error": f"error: {got:,} lines written, expected {expect_lines:,}", "wrong": True}
        walls.append(r.wall_s)
        rss.append(r.maxrss_mb)
    return {"wall": median(walls), "rss": median(rss), "walls": walls}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="skip the 1,000,000-entry execution; 1 repetition")
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument("--db", default=None, help="build (or reuse, if <db>.ids.json exists) the database at this path; kept")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder and its database")
    args = ap.parse_args()
    repeat = 1 if args.quick and args.repeat == 3 else args.repeat

    print_header("bench_queries: execution logs / inspect / --help on large executions (targets 4, 5, 7)")
    work = Path(tempfile.mkdtemp(prefix="kt-bench-q-", dir=args.tmpdir))
    db = Path(args.db) if args.db else work / "bench.db"
    ids_file = Path(str(db) + ".ids.json")
    if args.db and ids_file.exists():
        ids = json.loads(ids_file.read_text())
        print(f"reusing {db} ({ids})", flush=True)
    else:
        t0 = time.perf_counter()
        trio.run(_create_db, db)
        ids = {}
        ids["dag1000"] = run_dag(work, db, 1000)
        ids["dag20"] = run_dag(work, db, 20)
        print(f"setup: 1,000-task and 20-task executions run by the engine in {time.perf_counter() - t0:.1f} s", flush=True)
        t0 = time.perf_counter()
        sizes = [100_000] if args.quick else [100_000, 1_000_000]
        for n in sizes:
            ids[str(n)] = f"logs{n:012d}"
            add_log_execution(db, ids[str(n)], n)
        print(f"setup: log executions {sizes} inserted in {time.perf_counter() - t0:.1f} s", flush=True)
        ids_file.write_text(json.dumps(ids))

    out = work / "out.txt"
    rows, problems = [], []

    def add(label, res, target_text, target_value, prefect, lines=None, rss_target=None, rate_target=None):
        if "error" in res:
            if res.get("wrong"):
                problems.append(f"{label}: {res['error']}")
            rows.append([label, res["error"], "-", "-", target_text, prefect, "ERROR"])
            return
        rate = lines / res["wall"] if lines else None
        ok = True
        if target_value is not None:
            ok &= res["wall"] <= target_value
        if rss_target is not None:
            ok &= res["rss"] <= rss_target
        if rate_target is not None:
            ok &= rate >= rate_target
        rows.append(
            [
                label,
                fmt(res["wall"], " s"),
                f"{rate:,.0f}" if rate else "-",
                fmt(res["rss"], " MB"),
                target_text,
                prefect,
                "PASS" if ok else "MISS",
            ]
        )

    # 7. CLI start
    for label, argv in [("--help", [CLI, "--help"]), ("execution logs --help", [CLI, "execution", "logs", "--help"])]:
        add(f"7. {label}", timed(argv, max(5, repeat), out), "<= 0.3 s", 0.3, "-")

    # 4. logs
    for n in (100_000, 1_000_000):
        exec_id = ids.get(str(n))
        if not exec_id:
            continue
        for mode in ("text", "jsonl"):
            argv = [CLI, "execution", "logs", exec_id, "--db", str(db)] + (["--jsonl"] if mode == "jsonl" else [])
            res = timed(argv, repeat, out, expect_lines=n)
            if n == 100_000:
                add(f"4. logs {n:,} ({mode})", res, "<= 1 s", 1.0, "~29 s", lines=n)
            else:
                add(f"4. logs {n:,} ({mode})", res, ">= 200k lines/s, <= 80 MB", None, "-", lines=n, rss_target=80, rate_target=200_000)
        if n == 1_000_000:  # a filter must keep every page's cost flat (--since once rescanned from its bound)
            argv = [CLI, "execution", "logs", exec_id, "--db", str(db), "--since", "1d"]
            res = timed(argv, repeat, out, expect_lines=n)
            add(f"4. logs {n:,} --since 1d (text)", res, ">= 200k lines/s, <= 80 MB", None, "-", lines=n, rss_target=80,
                rate_target=200_000)

    # 5. inspect
    exec_id = ids.get("dag1000")
    if exec_id:
        for extra in ([], ["--json"], ["--timeline"]):
            argv = [CLI, "execution", "inspect", exec_id, "--db", str(db), *extra]
            add(f"5. inspect 1,000 tasks {' '.join(extra)}".rstrip(), timed(argv, repeat, out), "<= 0.8 s", 0.8, "-")
        q1000 = count_queries(db, exec_id)
        q20 = count_queries(db, ids["dag20"]) if ids.get("dag20") else "-"
        const = isinstance(q1000, int) and isinstance(q20, int) and q1000 == q20
        rows.append(
            ["5. inspect SQL statements (20 / 1,000 tasks)", f"{q20} / {q1000}", "-", "-", "constant", "-", "PASS" if const else "MISS"]
        )
    else:
        rows.append(["5. inspect 1,000 tasks", "error: no 1,000-task execution", "-", "-", "<= 0.8 s", "-", "ERROR"])

    print()
    print_table(
        ["what", "wall (median)", "lines/s", "peak RSS", "target", "Prefect 3.8", "verdict"],
        rows,
        title=f"kestra-trio read side, median of {repeat} (output to a file)",
    )
    if args.keep or args.db:
        print(f"kept: {db}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    if problems:
        for p in problems:
            print(f"CORRECTNESS FAILURE: {p}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
