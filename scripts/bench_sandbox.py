#!/usr/bin/env python
"""Restricted mode's cost (issue 12): the 100-task peer workload of bench_dag.py (1 root ->
98 parallel -> 1 join, each `core/shell.run` printing K=20 lines) run through the real
`kestra-trio run` as a trusted workflow (plain child processes), then with
`security: restricted` under bubblewrap, then under `sandbox: docker` (busybox image).

Reported, median of --repeat runs each: wall time and the extra cost per task over the
process runtime, (wall(runtime) - wall(process)) / N, once at --max-parallel 8 (the peer
workload: what a user waits for) and once at --max-parallel 1 (each task's own added
latency, nothing overlapped); and the CPU time of the engine and everything it started
(user + system, from wait4), per task, with its extra over the process runtime — the figure
other work on a shared machine disturbs least (Docker's containers run under dockerd, so
their CPU is not in it). Every run is checked: SUCCESS and all N*K lines committed.

    .venv/bin/python scripts/bench_sandbox.py                  # process, bubblewrap, docker; 3 repetitions
    .venv/bin/python scripts/bench_sandbox.py --quick          # 1 repetition, parallel 8 only
    .venv/bin/python scripts/bench_sandbox.py --image IMAGE    # another image with /bin/sh for docker

A runtime that is not available here (no bwrap, no Docker engine) is reported as skipped.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_common import CLI, fmt, median, print_header, print_table, run_measured, short_error, verdict  # noqa: E402
from bench_dag import verify, workflow_yaml  # noqa: E402

N, K = 100, 20
TARGET_BWRAP_MS = 10.0


def restricted(text: str, kind: str, image: str) -> str:
    if kind == "process":
        return text
    header = "security: restricted\n" + (f"sandbox: docker\nimage: {image}\n" if kind == "docker" else "")
    return text.replace("tasks:\n", header + "tasks:\n", 1)


def docker_ready(image: str) -> str | None:
    if shutil.which("docker") is None:
        return "no docker client"
    done = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
    return None if done.returncode == 0 else f"no Docker engine or no image {image}"


def run_case(kind: str, parallel: int, image: str, repeat: int, work: Path) -> tuple[float | None, float | None, str]:
    walls, cpus = [], []
    for index in range(repeat):
        folder = work / f"{kind}-{parallel}-{index}"
        folder.mkdir()
        wf = folder / "wf.yaml"
        wf.write_text(restricted(workflow_yaml(N, K), kind, image))
        db, out = folder / "bench.db", folder / "stdout.txt"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = run_measured([CLI, "run", str(wf), "--db", str(db), "--max-parallel", str(parallel)], stdout=out, timeout=600)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            return None, None, short_error(result)
        _, problem = verify(db, out, N, K, exact=False)
        if problem:
            return None, None, problem
        walls.append(result.wall_s)
        cpus.append((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime))
    return median(walls), median(cpus), ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--image", default="kestra-trio-test-busybox:1")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    print_header("restricted mode: extra cost per task over the process runtime")
    kinds = ["process"]
    skipped = []
    if shutil.which("bwrap"):
        kinds.append("bubblewrap")
    else:
        skipped.append("bubblewrap: not installed")
    problem = docker_ready(args.image)
    if problem is None:
        kinds.append("docker")
    else:
        skipped.append(f"docker: {problem} (the sandbox tests build kestra-trio-test-busybox:1)")
    rows, failed = [], False
    with tempfile.TemporaryDirectory(prefix="kt-bench-sandbox-") as tmp:
        for parallel in (8,) if args.quick else (8, 1):
            base = base_cpu = None
            for kind in kinds:
                wall, cpu, error = run_case(kind, parallel, args.image, repeat, Path(tmp))
                if wall is None or cpu is None:
                    failed = True
                    rows.append([kind, parallel, "FAILED", error, "", "", "", ""])
                    continue
                if kind == "process":
                    base, base_cpu = wall, cpu
                extra = None if base is None or kind == "process" else (wall - base) / N * 1000
                extra_cpu = None if base_cpu is None or kind == "process" else (cpu - base_cpu) / N * 1000
                target = "≤ 10 ms" if kind == "bubblewrap" and parallel == 8 else ("reported" if kind == "docker" else "")
                check = verdict(extra, TARGET_BWRAP_MS) if kind == "bubblewrap" and parallel == 8 and extra is not None else ""
                rows.append([
                    kind, parallel, fmt(wall, "s"), fmt(extra, "ms") if extra is not None else "-", target, check,
                    fmt(cpu / N * 1000, "ms"), fmt(extra_cpu, "ms") if extra_cpu is not None else "-",
                ])
    print_table(["runtime", "max-parallel", "wall (median)", "extra per task", "target", "verdict", "CPU per task", "extra CPU"], rows,
                title=f"N={N} tasks x K={K} lines, {repeat} repetition(s)")
    for line in skipped:
        print(f"skipped {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
