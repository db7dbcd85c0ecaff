#!/usr/bin/env python
"""The HTTP API's numbers (issue 10), against the real `kestra-trio server` on 127.0.0.1:0:

- starts: N `POST /api/v1/executions` of a one-task workflow (`core/shell.run echo`) from
  --clients concurrent HTTP/1.1 clients: starts accepted per second (target >= 200/s), and
  executions completed per second with `--max-parallel 8` (first POST to the last one ending,
  read from the database; target >= 60/s on 2 cores). Every execution is checked SUCCESS.
- SSE follow latency: a task prints its own clock (`date +%s.%N`) every 50 ms; a client
  following `/logs/follow` takes receive time - printed time per line: p50 (target <= 150 ms)
  and p99.
- idle: after a quiet pause, the server's RSS and its CPU seconds over --idle seconds
  (targets: <= 80 MB, <= 0.5 s over 60 s — no busy polling).

Trigger lateness (the cron half of the issue) is measured by the triggers' own benchmark.

    .venv/bin/python scripts/bench_server.py                # 1,000 starts, 60 s idle
    .venv/bin/python scripts/bench_server.py --quick        # 200 starts, 10 s idle
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

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_common import CLI, fmt, percentile, print_header, print_table, verdict  # noqa: E402

ONE_TASK = """
id: one
tasks:
  - id: a
    type: core/shell.run
    inputs: {command: echo hi}
"""
CLOCK = """
id: clock
tasks:
  - id: tick
    type: core/shell.run
    inputs: {command: 'for i in $(seq 1 LINES); do date +%s.%N; sleep 0.05; done'}
"""


def start_server(work: Path, max_parallel: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [CLI, "server", "--workflows", str(work / "wf"), "--port", "0", "--db", str(work / "k.db"),
         "--max-parallel", str(max_parallel)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("kestra-trio server listening on "):
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, line.split()[-1]


def terminal_count(db: Path, ids: set[str]) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, state, ended_at FROM executions WHERE workflow_id = 'one'").fetchall()
    ended = [r for r in rows if r[0] in ids and r[1] in ("SUCCESS", "FAILED", "CANCELLED")]
    return len(ended), sum(1 for r in ended if r[1] != "SUCCESS")


async def starts(url: str, db: Path, count: int, clients: int) -> dict:
    ids: set[str] = set()
    next_index = 0
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=clients)) as client:

        async def one_client() -> None:
            nonlocal next_index
            while next_index < count:
                next_index += 1
                response = await client.post("/api/v1/executions", json={"workflow": "one"})
                if response.status_code != 201:
                    raise SystemExit(f"start refused: {response.status_code} {response.text}")
                ids.add(response.json()["id"])

        began = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(one_client)
        accepted = time.perf_counter() - began
        while True:
            done, failed = await trio.to_thread.run_sync(terminal_count, db, ids)
            if done >= count:
                break
            await trio.sleep(0.05)
        completed = time.perf_counter() - began
    return {"accepted_per_s": count / accepted, "completed_per_s": count / completed, "failed": failed,
            "accepted_s": accepted, "completed_s": completed}


async def sse_latency(url: str, lines: int) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        response = await client.post("/api/v1/executions", json={"workflow": "clock"})
        execution_id = response.json()["id"]
        import json

        async with client.stream("GET", f"/api/v1/executions/{execution_id}/logs/follow") as stream:
            async for line in stream.aiter_lines():
                if not line.startswith("data: "):
                    continue
                received = time.time()
                entry = json.loads(line[6:])
                if entry.get("source", "").startswith("plugin"):
                    try:
                        latencies.append((received - float(entry["message"])) * 1000)
                    except ValueError:
                        pass
    if len(latencies) != lines:
        raise SystemExit(f"followed {len(latencies)} of {lines} clock lines")
    return latencies


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-parallel", type=int, default=8)
    parser.add_argument("--sse-lines", type=int, default=100)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle measured")
    parser.add_argument("--quick", action="store_true", help="200 starts, 10 s idle")
    args = parser.parse_args()
    if args.quick:
        args.starts, args.idle = 200, 10.0
    print_header("kestra-trio server: HTTP starts, completions, SSE latency, idle cost")
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        work = Path(tmp)
        (work / "wf").mkdir()
        (work / "wf" / "one.yaml").write_text(ONE_TASK)
        (work / "wf" / "clock.yaml").write_text(CLOCK.replace("LINES", str(args.sse_lines)))
        proc, url = start_server(work, args.max_parallel)
        try:
            result = trio.run(starts, url, work / "k.db", args.starts, args.clients)
            latencies = trio.run(sse_latency, url, args.sse_lines)
            time.sleep(3)  # let the last flushes and the WAL checkpoint settle
            cpu_before, rss = cpu_seconds(proc.pid), rss_mb(proc.pid)
            time.sleep(args.idle)
            idle_cpu = cpu_seconds(proc.pid) - cpu_before
            rss = max(rss, rss_mb(proc.pid))
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
    idle_cpu_60 = idle_cpu * 60 / args.idle
    print_table(
        ["measure", "value", "target", "verdict"],
        [
            [f"starts accepted ({args.starts} POST, {args.clients} clients)", fmt(result["accepted_per_s"], "/s"),
             ">= 200/s", verdict(result["accepted_per_s"], 200, lower_is_better=False)],
            [f"executions completed (--max-parallel {args.max_parallel})", fmt(result["completed_per_s"], "/s"),
             ">= 60/s", verdict(result["completed_per_s"], 60, lower_is_better=False)],
            ["failed executions", str(result["failed"]), "0", verdict(result["failed"], 0)],
            [f"SSE follow latency p50 ({args.sse_lines} lines)", fmt(percentile(latencies, 50), " ms"), "<= 150 ms",
             verdict(percentile(latencies, 50), 150)],
            ["SSE follow latency p99", fmt(percentile(latencies, 99), " ms"), "-", ""],
            ["idle RSS", fmt(rss, " MB"), "<= 80 MB", verdict(rss, 80)],
            [f"idle CPU (over {args.idle:g} s, scaled to 60 s)", fmt(idle_cpu_60, " s"), "<= 0.5 s",
             verdict(idle_cpu_60, 0.5)],
            ["server exit code after SIGTERM", str(code), "0", verdict(code, 0)],
        ],
    )


if __name__ == "__main__":
    main()
