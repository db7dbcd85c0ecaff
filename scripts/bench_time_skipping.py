#!/usr/bin/env python
"""Time skipping (issue 13): how long a test of 5 retries × 10-minute backoff takes.

Runs the example test `examples/tests/test_example_retries_and_timeouts.py::
test_five_retries_ten_minutes_apart` (6 real `core/shell.run` processes, 50 minutes of
backoff on the test's clock, asserted from the stored attempts) in a fresh pytest process,
--repeat times, and reports pytest's own `--durations` figures: the test body (`call`: the
`kt.run` and its reads) and the `kt` fixture (setup + teardown: database, watchdog process),
plus the wall time of the whole pytest process (interpreter and plugin start included).
Any failing run makes the script exit 1.

    .venv/bin/python scripts/bench_time_skipping.py              # 5 repetitions
    .venv/bin/python scripts/bench_time_skipping.py --repeat 20
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST = "examples/tests/test_example_retries_and_timeouts.py::test_five_retries_ten_minutes_apart"
DURATION = re.compile(r"^([\d.]+)s (setup|call|teardown)\s+\S+", re.M)


def one_run() -> dict[str, float]:
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "--durations=0", "--durations-min=0", TEST],
        cwd=REPO, capture_output=True, text=True,
    )
    wall = time.perf_counter() - began
    if proc.returncode != 0 or "1 passed" not in proc.stdout:
        sys.exit(f"the test failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    phases = {phase: float(seconds) for seconds, phase in DURATION.findall(proc.stdout)}
    return {"call": phases.get("call", 0.0), "fixture": phases.get("setup", 0.0) + phases.get("teardown", 0.0), "wall": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    runs = [one_run() for _ in range(args.repeat)]
    print(f"{TEST}  ({args.repeat} runs; 6 attempts, 5 backoffs of 10 minutes = 50 minutes on the test's clock)")
    print(f"{'':24}{'median':>10}{'max':>10}")
    for key, label in (("call", "test body (kt.run)"), ("fixture", "kt setup + teardown"), ("wall", "whole pytest process")):
        values = [r[key] for r in runs]
        print(f"{label:24}{statistics.median(values):>9.2f}s{max(values):>9.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
