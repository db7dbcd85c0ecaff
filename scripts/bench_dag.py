#!/usr/bin/env python
"""DAG benchmark (issue 6, targets 1, 2, 3, 8): the real `kestra-trio run` on generated workflows.

Workload: 1 root -> N-2 parallel tasks -> 1 join, every task a `core/shell.run` whose
`sh -c` prints K lines ("line <i> of task <id>", one `echo` per line). Each repetition runs

    kestra-trio run wf.yaml --db <fresh tmp>/bench.db --max-parallel 8

as a subprocess (the venv's console script, no shell), then checks the exit code, the final
state, and that every plugin line was committed: rows in `execution_logs` with source
LIKE 'plugin:%' == N*K (and every (task, line) pair exactly once on the smaller cases).
Any missing line makes the script exit 1.

Reported (medians over --repeat runs): wall time, engine peak RSS (the engine process's own
VmHWM, polled) and ru_maxrss of the tree (like /usr/bin/time -v), per-task engine cost
(wall(N=100) - wall(N=20)) / 80 and, for the scale case, (wall(N=1000) - wall(N=20)) / 980.

    .venv/bin/python scripts/bench_dag.py            # all cases, 3 repetitions
    .venv/bin/python scripts/bench_dag.py --quick    # N=20/100 K=20 and the 100k-line case, 1 repetition
    .venv/bin/python scripts/bench_dag.py --tty --cases small,scale   # stdout on a 24x100 pseudo-terminal (live view)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_common import (  # noqa: E402
    CLI,
    fmt,
    median,
    print_header,
    print_table,
    run_measured,
    short_error,
    verdict,
)

CREATED = re.compile(r"Execution ([0-9a-f]+) created")


@dataclass
class Case:
    name: str
    n: int
    k: int


def task_command(task_id: str, k: int) -> str:
    return f'i=0; while [ $i -lt {k} ]; do echo "line $i of task {task_id}"; i=$((i+1)); done'


def workflow_yaml(n: int, k: int) -> str:
    assert n >= 3
    mids = [f"t{i:04d}" for i in range(1, n - 1)]
    out = [f"id: bench-dag-{n}-{k}", "namespace: bench", "tasks:"]

    def task(task_id: str, needs: list[str] | None) -> None:
        out.append(f"  - id: {task_id}")
        out.append("    type: core/shell.run")
        if needs:
            out.append(f"    needs: [{', '.join(needs)}]")
        out.append("    inputs:")
        out.append(f"      command: '{task_command(task_id, k)}'")

    task("root", None)
    for m in mids:
        task(m, ["root"])
    task("join", mids)
    return "\n".join(out) + "\n"


def verify(db_path: Path, stdout_path: Path, n: int, k: int, exact: bool) -> tuple[str | None, str]:
    """(execution id, problem or '') — checks state and that all N*K plugin lines are committed."""
    text = stdout_path.read_text(errors="replace")
    m = CREATED.search(text)
    con = sqlite3.connect(db_path)
    try:
        exec_id = m.group(1) if m else None
        if exec_id is None:
            row = con.execute("SELECT id FROM executions ORDER BY created_at DESC LIMIT 1").fetchone()
            exec_id = row[0] if row else None
        if exec_id is None:
            return None, "no execution found"
        state = con.execute("SELECT state FROM executions WHERE id = ?", (exec_id,)).fetchone()[0]
        count = con.execute(
            "SELECT COUNT(*) FROM execution_logs WHERE execution_id = ? AND source LIKE 'plugin:%'", (exec_id,)
        ).fetchone()[0]
        problems = []
        if state != "SUCCESS":
            problems.append(f"state {state}")
        if count != n * k:
            problems.append(f"{count:,} plugin lines committed, expected {n * k:,} (missing {n * k - count:,})")
        if exact and count == n * k:
            distinct = con.execute(
                "SELECT COUNT(*) FROM (SELECT DISTINCT task_id, message FROM execution_logs "
                "WHERE execution_id = ? AND source LIKE 'plugin:%')",
                (exec_id,),
            ).fetchone()[0]
            if distinct != n * k:
                problems.append(f"only {distinct:,} distinct (task, line) pairs of {n * k:,}")
        return exec_id, "; ".join(problems)
    finally:
        con.close()


def run_on_terminal(argv: list[str], out: Path, timeout: float):
    """run_measured with stdout on a 24x100 pseudo-terminal, as in a user's shell: the live
    view is drawn. What the terminal shows is copied to `out`."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))

    def copy() -> None:
        with open(out, "wb") as sink:
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO once the last writer is gone
                    break
                if not data:
                    break
                sink.write(data)

    reader = threading.Thread(target=copy, daemon=True)
    reader.start()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    env.setdefault("TERM", "xterm-256color")
    with os.fdopen(slave, "wb") as terminal:
        result = run_measured(argv, stdout=terminal, timeout=timeout, env=env)
    reader.join(timeout=10)
    os.close(master)
    result.stdout_path = str(out)
    return result


def run_case(case: Case, repeat: int, max_parallel: int, tmp_root: Path, timeout: float, tty: bool = False) -> dict:
    walls, peaks, trees = [], [], []
    problems = []
    for rep in range(repeat):
        work = Path(tempfile.mkdtemp(prefix=f"{case.name}-{rep}-", dir=tmp_root))
        wf = work / "wf.yaml"
        wf.write_text(workflow_yaml(case.n, case.k))
        db = work / "bench.db"
        out = work / "stdout.txt"
        argv = [CLI, "run", str(wf), "--db", str(db), "--max-parallel", str(max_parallel)]
        r = run_on_terminal(argv, out, timeout) if tty else run_measured(argv, stdout=out, timeout=timeout)
        if r.returncode != 0:
            problems.append(short_error(r))
            continue
        _exec_id, problem = verify(db, out, case.n, case.k, exact=case.n * case.k <= 200_000)
        if problem:
            problems.append(problem)
        walls.append(r.wall_s)
        peaks.append(r.peak_mb)
        trees.append(r.maxrss_mb)
        print(
            f"  {case.name} rep {rep + 1}/{repeat}: {r.wall_s:.3f} s, engine peak {fmt(r.peak_mb, ' MB')}, "
            f"tree max {fmt(r.maxrss_mb, ' MB')}{'  PROBLEM: ' + problem if problem else ''}",
            flush=True,
        )
    return {
        "case": case,
        "wall": median(walls),
        "walls": walls,
        "peak": median(peaks),
        "peak_max": max((p for p in peaks if p), default=None),
        "tree": median(trees),
        "problems": problems,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="repetitions per case (median reported)")
    ap.add_argument("--quick", action="store_true", help="fast subset: N=20/100 K=20 and N=100 K=1000, 1 repetition")
    ap.add_argument("--max-parallel", type=int, default=8)
    ap.add_argument("--big-repeat", type=int, default=None, help="repetitions of the 1,000,000-line case (default: --repeat)")
    ap.add_argument("--cases", default=None, help="comma-separated subset of: small,base,logs,scale,million")
    ap.add_argument("--tmpdir", default=None, help="where the per-run databases go (default: system temp)")
    ap.add_argument("--timeout", type=float, default=300.0, help="per-run timeout in seconds")
    ap.add_argument("--keep", action="store_true", help="keep the per-run folders (workflows, databases)")
    ap.add_argument("--tty", action="store_true", help="give the engine a pseudo-terminal as stdout (live view drawn)")
    args = ap.parse_args()

    print_header("bench_dag: kestra-trio run on generated DAGs (targets 1, 2, 3, 8)")
    cases = {
        "small": Case("N=20 K=20", 20, 20),
        "base": Case("N=100 K=20", 100, 20),
        "logs": Case("N=100 K=1000", 100, 1000),
        "scale": Case("N=1000 K=20", 1000, 20),
        "million": Case("N=100 K=10000", 100, 10_000),
    }
    if args.cases:
        selected = [c.strip() for c in args.cases.split(",")]
    elif args.quick:
        selected = ["small", "base", "logs"]
    else:
        selected = list(cases)
    repeat = 1 if args.quick and args.repeat == 3 else args.repeat

    # CLI start-up cost, measured on its own so it is not mistaken for per-task cost
    start_walls = []
    for _ in range(7):
        r = run_measured([CLI, "--help"])
        start_walls.append(r.wall_s)
    start = median(start_walls)
    print(f"CLI start-up (`kestra-trio --help`, median of 7): {start * 1000:.0f} ms\n", flush=True)

    tmp_root = Path(tempfile.mkdtemp(prefix="kt-bench-dag-", dir=args.tmpdir))
    results = {}
    for key in selected:
        case = cases[key]
        rep = args.big_repeat if (key == "million" and args.big_repeat) else repeat
        print(f"running {case.name} ({case.n * case.k:,} plugin lines) x{rep} ...", flush=True)
        results[key] = run_case(case, rep, args.max_parallel, tmp_root, args.timeout, tty=args.tty)

    def wall(key):
        return results[key]["wall"] if key in results else None

    per_task_100 = per_task_1000 = None
    if wall("small") is not None and wall("base") is not None:
        per_task_100 = (wall("base") - wall("small")) / 80
    if wall("small") is not None and wall("scale") is not None:
        per_task_1000 = (wall("scale") - wall("small")) / 980

    print()
    rows = []
    for key, res in results.items():
        c = res["case"]
        rows.append(
            [
                c.name,
                f"{c.n * c.k:,}",
                fmt(res["wall"], " s"),
                " ".join(f"{w:.2f}" for w in res["walls"]),
                fmt(res["peak"], " MB"),
                fmt(res["tree"], " MB"),
                f"{c.n * c.k / res['wall']:,.0f}" if res["wall"] else "-",
                "OK" if not res["problems"] else "FAIL: " + res["problems"][0],
            ]
        )
    print_table(
        ["case", "plugin lines", "wall (median)", "walls", "engine peak RSS", "tree maxrss", "lines/s", "all lines committed"],
        rows,
        title="runs (kestra-trio run ... --max-parallel %d%s)" % (args.max_parallel, ", stdout on a terminal" if args.tty else ""),
    )

    targets = [
        ["CLI start (`--help`)", fmt(start * 1000, " ms"), "(context)", "-", "-"],
    ]
    if "base" in results:
        targets.append(["1. N=100 K=20 wall", fmt(wall("base"), " s"), "<= 1.5 s", "~13.0 s", verdict(wall("base"), 1.5)])
    if per_task_100 is not None:
        targets.append(
            ["1. engine cost/task (N100-N20)/80", fmt(per_task_100 * 1000, " ms"), "<= 5 ms", "~53 ms", verdict(per_task_100 * 1000, 5)]
        )
    if "logs" in results:
        targets.append(["2. N=100 K=1000 wall (100k lines)", fmt(wall("logs"), " s"), "<= 3 s", "~127 s", verdict(wall("logs"), 3)])
    if "million" in results:
        peak = results["million"]["peak_max"]
        targets.append(
            ["3. engine peak RSS, 1M lines (max of runs)", fmt(peak, " MB"), "<= 120 MB", "240-350 MB", verdict(peak, 120)]
        )
        targets.append(["   1M-line run wall", fmt(wall("million"), " s"), "-", "-", "-"])
    if per_task_1000 is not None and per_task_100 is not None:
        ratio = per_task_1000 / per_task_100 if per_task_100 > 0 else None
        targets.append(
            ["8. engine cost/task (N1000-N20)/980", fmt(per_task_1000 * 1000, " ms"), "-", "-", "-"]
        )
        targets.append(["8. ratio vs N=100 per-task cost", fmt(ratio, "x"), "<= 1.5x", "-", verdict(ratio, 1.5)])
    print_table(["target", "measured (median)", "target", "Prefect 3.8", "verdict"], targets, title="targets")

    if args.keep:
        print(f"kept: {tmp_root}")
    else:
        shutil.rmtree(tmp_root, ignore_errors=True)
    failed = [(k, p) for k, r in results.items() for p in r["problems"]]
    if failed:
        for key, problem in failed:
            print(f"CORRECTNESS FAILURE in {cases[key].name}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
