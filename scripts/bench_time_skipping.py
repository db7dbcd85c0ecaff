#!/usr/bin/env python
"""Time skipping (issue 13): how long a test of 5 retries × 10-minute backoff takes.

Two measurements of the workflow `examples/tests/workflows/flaky_api.yaml` (6 real
`core/shell.run` processes, 5 backoffs of 10 minutes = 50 minutes on the test's clock):

1. the example test `test_five_retries_ten_minutes_apart` in a fresh pytest process, --repeat
   times: pytest's own `call` duration (pytest-trio runs the `kt` fixture inside the test's trio
   run, so it includes starting and stopping `kt`, and — the only test of its session — the
   first import of the engine), and the wall time of the whole pytest process;
2. in this process, under a `MockClock(autojump_threshold=0)` (what `autojump_clock` is), warm:
   `open_harness` setup, `kt.run` (with its reads), teardown, --repeat times.

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
import tempfile
import time
from pathlib import Path

import trio
import trio.testing

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
    return {"call": phases.get("call", 0.0), "wall": wall}


async def warm_runs(repeat: int) -> list[dict[str, float]]:
    from kestra_trio.testing import open_harness

    runs = []
    for _ in range(repeat + 1):  # the first one warms the imports up and is not counted
        with tempfile.TemporaryDirectory() as root:
            began = time.perf_counter()
            async with open_harness(root) as kt:
                ready = time.perf_counter()
                result = await kt.run(REPO / "examples/tests/workflows/flaky_api.yaml")
                ran = time.perf_counter()
            ended = time.perf_counter()
        attempts = result.task("call").attempts
        if result.state != "FAILED" or len(attempts) != 6 or attempts[-1].started_at - attempts[0].started_at < 3_000_000:
            sys.exit(f"unexpected result: {result!r}")
        runs.append({"setup": ready - began, "run": ran - ready, "teardown": ended - ran})
    return runs[1:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    runs = [one_run() for _ in range(args.repeat)]
    warm = trio.run(warm_runs, args.repeat, clock=trio.testing.MockClock(autojump_threshold=0))
    print(f"flaky_api.yaml: 6 attempts, 5 backoffs of 10 minutes = 50 minutes on the test's clock ({args.repeat} runs)")
    print(f"{'':44}{'median':>9}{'max':>9}")
    rows = [
        ("pytest: the test (cold, kt start/stop)", [r["call"] for r in runs]),
        ("pytest: whole process", [r["wall"] for r in runs]),
        ("in process, warm: kt setup", [r["setup"] for r in warm]),
        ("in process, warm: kt.run", [r["run"] for r in warm]),
        ("in process, warm: kt teardown", [r["teardown"] for r in warm]),
    ]
    for label, values in rows:
        print(f"{label:44}{statistics.median(values):>8.2f}s{max(values):>8.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
