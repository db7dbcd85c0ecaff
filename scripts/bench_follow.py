#!/usr/bin/env python
"""Follow-latency benchmark (issue 6, target 6): plugin writes a line -> `execution logs --follow` prints it.

Runs the real `kestra-trio run` of a one-task workflow whose `sh -c` waits --warmup seconds
(so the follower is attached), then prints `tick <i> <date +%s%N>` every --interval seconds,
--lines times. As soon as the run prints `Execution <id> created`, the script starts

    kestra-trio execution logs <id> --follow --jsonl --db <same db>

and timestamps every line it receives (time.time_ns(), same clock as `date`).
latency = arrival - the timestamp embedded by the plugin. Reports median, p95 and worst,
and checks that every tick arrived exactly once (exit 1 if any is missing or duplicated).

    .venv/bin/python scripts/bench_follow.py                    # 2 runs of 250 lines, 30 ms apart
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_common import CLI, fmt, median, percentile, print_header, print_table, verdict  # noqa: E402

TICK = re.compile(r"tick (\d+) (\d+)")


def workflow(lines: int, interval: float, warmup: float) -> str:
    cmd = (
        f"sleep {warmup}; i=0; while [ $i -lt {lines} ]; do "
        f'echo "tick $i $(date +%s%N)"; i=$((i+1)); sleep {interval}; done'
    )
    return (
        "id: bench-follow\nnamespace: bench\ntasks:\n"
        "  - id: ticker\n    type: core/shell.run\n    inputs:\n"
        f"      command: '{cmd}'\n"
    )


def once(work: Path, lines: int, interval: float, warmup: float) -> dict:
    wf = work / "follow.yaml"
    wf.write_text(workflow(lines, interval, warmup))
    db = work / "bench.db"
    run_out = work / "run.out"
    with open(run_out, "wb") as fh:
        run = subprocess.Popen(
            [CLI, "run", str(wf), "--db", str(db)], stdout=fh, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
    exec_id = None
    deadline = time.monotonic() + 30
    while exec_id is None and time.monotonic() < deadline:
        m = re.search(r"Execution ([0-9a-f]+) created", run_out.read_text(errors="replace"))
        if m:
            exec_id = m.group(1)
            break
        if run.poll() is not None:
            break
        time.sleep(0.005)
    if exec_id is None:
        run.kill()
        return {"error": f"error: no execution id from kestra-trio run: {run.stderr.read().decode()[-300:]}"}
    t_follow = time.monotonic()
    follower = subprocess.Popen(
        [CLI, "execution", "logs", exec_id, "--follow", "--jsonl", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    arrivals: list[tuple[int, bytes]] = []
    first_output = [None]

    def reader():
        # raw os.read: no Python-side buffering between the follower's flush and our clock
        buf = b""
        fd = follower.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            now = time.time_ns()
            if not chunk:
                break
            if first_output[0] is None:
                first_output[0] = time.monotonic() - t_follow
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for line in complete:
                arrivals.append((now, line))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        run_rc = run.wait(timeout=lines * (interval + 0.05) + warmup + 60)
        follow_rc = follower.wait(timeout=30)
    except subprocess.TimeoutExpired:
        run.kill()
        follower.kill()
        return {"error": "error: timeout waiting for the run or the follower to finish"}
    t.join(5)
    run_err = run.stderr.read().decode(errors="replace")
    follow_err = follower.stderr.read().decode(errors="replace")
    if follow_rc != 0:
        return {"error": f"error: follower exit {follow_rc}: {follow_err.strip()[-300:]}"}

    seen: dict[int, int] = {}
    latencies = []
    bad_json = 0
    for arrived, raw in arrivals:
        try:
            obj = json.loads(raw)
        except ValueError:
            bad_json += 1
            continue
        m = TICK.fullmatch(str(obj.get("message", "")).strip())
        if not m:
            continue
        i, ts = int(m.group(1)), int(m.group(2))
        seen[i] = seen.get(i, 0) + 1
        latencies.append((arrived - ts) / 1e6)
    missing = [i for i in range(lines) if i not in seen]
    dups = [i for i, c in seen.items() if c > 1]
    return {
        "exec_id": exec_id,
        "run_rc": run_rc,
        "run_err": run_err.strip()[-300:],
        "latencies": latencies,
        "missing": missing,
        "dups": dups,
        "bad_json": bad_json,
        "follower_start": first_output[0],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=250)
    ap.add_argument("--interval", type=float, default=0.03, help="seconds between lines (20-50 ms)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds the task waits before the first line")
    ap.add_argument("--repeat", type=int, default=2, help="runs (latencies are pooled)")
    ap.add_argument("--tmpdir", default=None)
    args = ap.parse_args()
    print_header("bench_follow: plugin line -> `execution logs --follow --jsonl` latency (target 6)")

    pooled, problems, rows = [], [], []
    for rep in range(args.repeat):
        work = Path(tempfile.mkdtemp(prefix="kt-bench-follow-", dir=args.tmpdir))
        res = once(work, args.lines, args.interval, args.warmup)
        if "error" in res:
            print(f"  run {rep + 1}: {res['error']}", flush=True)
            rows.append([rep + 1, res["error"], "-", "-", "-", "-", "-"])
            continue
        shutil.rmtree(work, ignore_errors=True)
        lat = res["latencies"]
        pooled += lat
        if res["missing"] or res["dups"]:
            problems.append(
                f"run {rep + 1}: {len(res['missing'])} missing (first {res['missing'][:5]}), "
                f"{len(res['dups'])} duplicated (first {res['dups'][:5]})"
            )
        if res["run_rc"] != 0:
            problems.append(f"run {rep + 1}: kestra-trio run exited {res['run_rc']}: {res['run_err']}")
        rows.append(
            [
                rep + 1,
                len(lat),
                fmt(median(lat), " ms"),
                fmt(percentile(lat, 95), " ms"),
                fmt(max(lat) if lat else None, " ms"),
                f"{len(res['missing'])}/{len(res['dups'])}",
                fmt(res["follower_start"], " s"),
            ]
        )
        print(f"  run {rep + 1}: {len(lat)} lines, median {fmt(median(lat), ' ms')}, worst {fmt(max(lat) if lat else None, ' ms')}", flush=True)
    print()
    print_table(
        ["run", "lines", "median", "p95", "worst", "missing/dup", "follower 1st output"],
        rows,
        title=f"per run ({args.lines} lines every {args.interval * 1000:.0f} ms)",
    )
    med, p95, worst = median(pooled), percentile(pooled, 95), (max(pooled) if pooled else None)
    print_table(
        ["target", "measured", "target", "verdict"],
        [
            ["6. follow latency median", fmt(med, " ms"), "<= 250 ms", verdict(med, 250)],
            ["6. follow latency p95", fmt(p95, " ms"), "-", "-"],
            ["6. follow latency worst", fmt(worst, " ms"), "<= 1200 ms", verdict(worst, 1200)],
            ["lines measured", f"{len(pooled)}", ">= 200", verdict(len(pooled), 200, lower_is_better=False)],
        ],
        title="target 6 (pooled over runs)",
    )
    if problems:
        for p in problems:
            print(f"CORRECTNESS FAILURE: {p}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
