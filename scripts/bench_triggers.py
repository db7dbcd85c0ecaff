#!/usr/bin/env python
"""Trigger lateness benchmark (issue 10): a 6-field every-second cron trigger, from its
scheduled instant to the execution's claim (QUEUED -> RUNNING), over --fires fires.

Starts the scheduling service parts in a process of their own (the harness
tests/service/scheduling_process.py: shared queue + triggers + --workflows folder, what
`kestra-trio server` runs besides HTTP) on a fresh SQLite file, waits for --fires executions
of a one-task workflow to end, stops it with SIGTERM, then reads the database:

    lateness = executions.started_at (the claim) - trigger_fires.scheduled_at

Also checks that consecutive fires are exactly 1 s apart (none missed, none twice) and
reports the harness's CPU seconds per fire.

With --idle SECONDS it measures instead the idle cost of the same process with one daily
trigger and the folder watched: CPU seconds (utime + stime from /proc) over SECONDS after a
5 s warm-up, and its RSS.

    .venv/bin/python scripts/bench_triggers.py                 # 120 fires (about 2 minutes)
    .venv/bin/python scripts/bench_triggers.py --idle 60       # idle CPU over 60 s
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_common import REPO, fmt, median, percentile, print_header, print_table, verdict  # noqa: E402

HARNESS = REPO / "tests" / "service" / "scheduling_process.py"
WORKFLOW = """\
id: tick
triggers:
  - id: every_second
    type: cron
    cron: "* * * * * *"
tasks:
  - id: a
    type: core/shell.run
    inputs: {command: "echo {{ trigger.scheduled_at }}"}
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def start(tmp: str, workflow: str) -> tuple[subprocess.Popen, Path]:
    db, folder = Path(tmp) / "k.db", Path(tmp) / "workflows"
    folder.mkdir()
    (folder / "tick.yaml").write_text(workflow)
    server = subprocess.Popen([sys.executable, str(HARNESS), str(db), str(folder)], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdout.readline() == "ready\n", "the harness did not start"
    return server, db


def idle(seconds: float) -> int:
    print_header(f"Idle scheduling service: CPU over {seconds:g} s, one daily trigger, folder watched")
    with tempfile.TemporaryDirectory(prefix="bench-triggers-") as tmp:
        server, _ = start(tmp, WORKFLOW.replace('"* * * * * *"', '"0 3 * * *"'))
        time.sleep(5)
        cpu_start = cpu_seconds(server.pid)
        time.sleep(seconds)
        cpu = cpu_seconds(server.pid) - cpu_start
        rss = next(line.split()[1] for line in Path(f"/proc/{server.pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS"))
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
    print_table(["seconds", "CPU seconds", "RSS"], [[f"{seconds:g}", fmt(cpu, " s", 3), f"{int(rss) // 1024} MB"]])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fires", type=int, default=120)
    parser.add_argument("--idle", type=float, metavar="SECONDS", help="measure the idle cost instead")
    args = parser.parse_args()
    if args.idle:
        return idle(args.idle)
    print_header("Trigger lateness: every-second cron trigger, scheduled instant -> RUNNING")
    with tempfile.TemporaryDirectory(prefix="bench-triggers-") as tmp:
        server, db = start(tmp, WORKFLOW)
        cpu_start = cpu_seconds(server.pid)
        started = time.monotonic()
        with sqlite3.connect(db, timeout=30) as conn:
            while conn.execute("SELECT count(*) FROM executions WHERE ended_at IS NOT NULL").fetchone()[0] < args.fires + 1:
                time.sleep(0.5)
        cpu = cpu_seconds(server.pid) - cpu_start
        elapsed = time.monotonic() - started
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT f.scheduled_at, e.started_at, e.state FROM trigger_fires f JOIN executions e "
                "ON e.id = f.execution_id WHERE e.started_at IS NOT NULL ORDER BY f.scheduled_at"
            ).fetchall()
    rows = rows[1:args.fires + 1]  # the first fire races the start-up; it is not a steady-state figure
    lateness = [started_at - scheduled for scheduled, started_at, _ in rows]
    times = [scheduled for scheduled, _, _ in rows]
    gaps = [b - a for a, b in zip(times, times[1:])]
    failed = sum(1 for *_, state in rows if state != "SUCCESS")
    p99 = percentile(lateness, 99)
    print_table(
        ["fires", "p50", "p99", "max", "target p99", "gaps != 1 s", "not SUCCESS", "CPU s per s"],
        [[len(rows), fmt(median(lateness), " ms", 1), fmt(p99, " ms", 1), fmt(max(lateness), " ms", 1),
          verdict(p99, 50), sum(1 for g in gaps if g != 1000), failed, fmt(cpu / max(1, elapsed), " s", 3)]],
    )
    return 0 if p99 <= 50 and all(g == 1000 for g in gaps) and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
