"""Shared helpers for the `scripts/bench_*.py` benchmarks (not part of the package).

Table printing, medians/percentiles, the machine description, and running a real CLI
subprocess while measuring its wall time and peak RSS:

* `vmhwm_kb` — the process's own high-water mark (`VmHWM` in /proc/<pid>/status), polled
  every few ms while it runs: the peak RSS of *that* process (e.g. the engine), children
  excluded. Misses at most the last poll interval.
* `maxrss_kb` — `ru_maxrss` from `os.wait4`: the kernel's exact peak, the largest of the
  process and its waited-for descendants (what `/usr/bin/time -v` reports as
  "Maximum resident set size").
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CLI = str(VENV_BIN / "kestra-trio") if (VENV_BIN / "kestra-trio").exists() else str(REPO / ".venv" / "bin" / "kestra-trio")
PYTHON = sys.executable


# ----------------------------------------------------------------------------- stats
def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values, p: float):
    """Nearest-rank percentile (p in 0..100)."""
    values = sorted(values)
    if not values:
        return None
    k = max(0, min(len(values) - 1, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


# ----------------------------------------------------------------------------- machine
def machine_description() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f", {int(line.split()[1]) // 1024 // 1024 + 1} GB RAM"
                break
    except OSError:
        pass
    try:
        import sqlite3

        sqlite_v = sqlite3.sqlite_version
    except Exception:  # pragma: no cover
        sqlite_v = "?"
    return (
        f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}{mem}; "
        f"Linux {platform.release()}; Python {platform.python_version()}; SQLite {sqlite_v}"
    )


def command_line() -> str:
    exe = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    return f"(cd {shlex.quote(os.getcwd())} && " + " ".join(shlex.quote(a) for a in [exe, *sys.argv]) + ")"


def print_header(title: str) -> None:
    print(f"# {title}")
    print(f"command: {command_line()}")
    print(f"machine: {machine_description()}")
    print(f"cli:     {CLI}")
    rev = sh(f"git -C {shlex.quote(str(REPO))} rev-parse --short HEAD")
    dirty = sh(f"git -C {shlex.quote(str(REPO))} status --porcelain --untracked-files=no -- kestra_trio plugins")
    print(f"tree:    {rev or '?'}{' + uncommitted engine changes' if dirty else ''}")
    print(f"load:    {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min load average at start; other work on the machine adds noise)")
    print(flush=True)


# ----------------------------------------------------------------------------- table
def fmt(value, unit: str = "", digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if abs(value) >= 1000:
            text = f"{value:,.0f}"
        elif abs(value) >= 100:
            text = f"{value:.1f}"
        else:
            text = f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits - 1}f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text}{unit}"


def print_table(headers: list[str], rows: list[list], title: str | None = None) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    if title:
        print(f"## {title}")
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(cells[0], widths)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    print(flush=True)


def verdict(value, target, *, lower_is_better: bool = True) -> str:
    if value is None or isinstance(value, str):
        return "n/a"
    ok = value <= target if lower_is_better else value >= target
    return "PASS" if ok else "MISS"


# ----------------------------------------------------------------------------- processes
def _read_vmhwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class RunResult:
    argv: list[str]
    returncode: int
    wall_s: float
    vmhwm_kb: int | None  # peak RSS of the process itself (polled VmHWM)
    maxrss_kb: int | None  # ru_maxrss from wait4 (process + descendants' max)
    stdout_path: str | None = None
    stderr: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def peak_mb(self) -> float | None:
        kb = self.vmhwm_kb or self.maxrss_kb
        return kb / 1024 if kb else None

    @property
    def maxrss_mb(self) -> float | None:
        return self.maxrss_kb / 1024 if self.maxrss_kb else None


def run_measured(
    argv: list[str],
    *,
    stdout=None,
    env: dict | None = None,
    cwd: str | None = None,
    poll_interval: float = 0.005,
    timeout: float | None = None,
) -> RunResult:
    """Run argv (no shell), return wall time, polled VmHWM and wait4's ru_maxrss.

    `stdout` may be a path (str/Path: the output is written there), a file object, or None
    (discarded).
    """
    close = None
    if isinstance(stdout, (str, Path)):
        close = out = open(stdout, "wb")
        stdout_path = str(stdout)
    elif stdout is None:
        out = subprocess.DEVNULL
        stdout_path = None
    else:
        out = stdout
        stdout_path = getattr(stdout, "name", None)
    stderr_r, stderr_w = os.pipe()
    peak = [0]
    done = threading.Event()
    err_chunks: list[bytes] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=out, stderr=stderr_w, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    os.close(stderr_w)

    def drain() -> None:
        while True:
            chunk = os.read(stderr_r, 65536)
            if not chunk:
                break
            err_chunks.append(chunk)
        os.close(stderr_r)

    def poll() -> None:
        while not done.is_set():
            v = _read_vmhwm_kb(proc.pid)
            if v is not None and v > peak[0]:
                peak[0] = v
            done.wait(poll_interval)

    t_err = threading.Thread(target=drain, daemon=True)
    t_poll = threading.Thread(target=poll, daemon=True)
    t_err.start()
    t_poll.start()
    deadline = None if timeout is None else t0 + timeout
    status = None
    rusage = None
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if deadline is not None and time.perf_counter() > deadline:
            proc.kill()
            pid, status, rusage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.001)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    t_poll.join()
    t_err.join()
    if close is not None:
        close.close()
    return RunResult(
        argv=list(argv),
        returncode=proc.returncode,
        wall_s=wall,
        vmhwm_kb=peak[0] or None,
        maxrss_kb=rusage.ru_maxrss if rusage else None,
        stdout_path=stdout_path,
        stderr=b"".join(err_chunks).decode("utf-8", "replace"),
    )


def cli_start_cost(args: list[str], repeat: int = 7) -> tuple[float | None, str | None]:
    """Median wall time of `kestra-trio <args>` (e.g. --help); (None, error) if it fails."""
    walls = []
    for _ in range(repeat):
        r = run_measured([CLI, *args])
        if r.returncode != 0:
            return None, f"error: exit {r.returncode}: {r.stderr.strip().splitlines()[-1:] if r.stderr.strip() else ''}"
        walls.append(r.wall_s)
    return median(walls), None


def short_error(r: RunResult) -> str:
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    tail = lines[-1] if lines else ""
    return f"error: exit {r.returncode}: {tail[:160]}"


def sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
