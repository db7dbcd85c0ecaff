#!/usr/bin/env python
"""Web view benchmark (issue 14): the pages in a real headless chromium against a real server.

Measures, with Debian's chromium driven by Selenium (chromium-driver):

* execution page of a --lines (100,000) line execution: first log line on screen after
  navigation (target <= 1 s), every line loaded, JS heap after a garbage collection
  (target <= 150 MB), scrolling to the end (target <= 1 s) and the longest main-thread stall
  while the lines stream in;
* the same with --big-lines (1,000,000) lines: the page stays responsive (longest stall,
  scrolling to the middle and to the end);
* live tail latency: a plugin prints `tick <i> <epoch ms>` every 50 ms; the page notes when each
  line appears on screen (same clock): p50 (target <= 250 ms), p95, worst;
* executions page with --executions (10,000) executions: first row on screen (target <= 1 s).

The log executions are real runs (`kestra-trio run` of a `seq | sed` workflow: ~100-character
lines with a colour sequence each); the 10,000
executions are copies of one real execution's rows made with SQL (running 10,000 workflows
would take most of an hour and measure the engine, not the page).

    .venv/bin/python scripts/bench_web.py                      # 100k + 1M lines, 10k executions
    .venv/bin/python scripts/bench_web.py --big-lines 0        # skip the 1M-line page
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import CLI, fmt, percentile, print_header, print_table, verdict  # noqa: E402

#: a log line of a typical length (~100 characters), with a colour, as sed's replacement (& = the line number)
LINE = r"2026-12-03 12:00:00,123 INFO  worker.step[&] processed batch & of the input: \\x1b[32mok\\x1b[0m rows=1000 bytes=65536"

#: injected before the page's own scripts: when the first row appears, the longest stall
PROBE = """
window.__bench = {first: null, stall: 0};
new MutationObserver(() => {
  if (window.__bench.first === null && document.querySelector('.log-line, #executions tbody tr'))
    window.__bench.first = performance.now();
}).observe(document, {subtree: true, childList: true});
let last = performance.now();
setInterval(() => { const now = performance.now(); window.__bench.stall = Math.max(window.__bench.stall, now - last - 20); last = now; }, 20);
"""

SCROLL = """
const done = arguments[arguments.length - 1];
const box = document.getElementById('logs');
const where = arguments[0];
const t0 = performance.now();
box.focus();
box.scrollTop = where === 'end' ? box.scrollHeight : box.scrollHeight / 2;
requestAnimationFrame(() => requestAnimationFrame(() => {
  const rows = box.querySelectorAll('.log-line');
  done([performance.now() - t0, rows.length ? rows[rows.length - 1].textContent : '']);
}));
"""

TAIL_PROBE = """
window.__ticks = {};
new MutationObserver((records) => {
  const now = Date.now();
  for (const r of records) for (const n of r.addedNodes) {
    const m = n.textContent && n.textContent.match(/tick (\\d+) (\\d+)$/);
    if (m && !(m[1] in window.__ticks)) window.__ticks[m[1]] = now - Number(m[2]);
  }
}).observe(document.getElementById('logs'), {subtree: true, childList: true});
"""


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,720",
                "--disable-extensions", "--no-first-run", "--disable-background-networking"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "chromedriver"))
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PROBE})
    driver.set_script_timeout(120)
    return driver


def heap_mb(driver) -> float:
    driver.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
    return driver.execute_cdp_cmd("Runtime.getHeapUsage", {})["usedSize"] / 1e6


def run_lines(db: Path, here: Path, lines: int) -> str:
    # the engine stores at most 10 MiB of output per task (plugin_runtime.streams): the lines
    # are spread over enough parallel tasks to store every one of them
    tasks = max(1, -(-lines * 120 // (8 * 1024 * 1024)))
    per_task = -(-lines // tasks)
    wf = here / f"lines{lines}.yaml"
    text = f"id: lines{lines}\nnamespace: bench\ntasks:\n"
    for t in range(tasks):
        first, last = t * per_task + 1, min(lines, (t + 1) * per_task)
        text += (f"  - id: print{t}\n    type: core/shell.run\n"
                 f"    inputs: {{command: \"seq {first} {last} | sed 's/.*/{LINE}/'\"}}\n")
    wf.write_text(text)
    done = subprocess.run([CLI, "run", str(wf), "--db", str(db)], capture_output=True, text=True, timeout=3600)
    match = re.search(r"\b([0-9a-f]{16})\b", done.stdout + done.stderr)
    assert done.returncode == 0 and match, done.stderr[-2000:]
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT count(*) FROM execution_logs WHERE execution_id = ? AND source LIKE 'plugin:%'",
                              (match.group(1),)).fetchone()[0]
    assert stored == lines, f"{stored} of {lines} lines stored"
    return match.group(1)


def copy_executions(db: Path, source_id: str, count: int) -> None:
    with sqlite3.connect(db) as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(executions)")]
        task_cols = [r[1] for r in conn.execute("PRAGMA table_info(task_runs)")]
        other = ", ".join(c for c in cols if c not in ("id", "created_at"))
        other_tasks = ", ".join(c for c in task_cols if c != "execution_id")
        for i in range(count):
            new = f"c{i:015x}"
            conn.execute(f"INSERT INTO executions (id, created_at, {other}) SELECT ?, created_at - ?, {other} "
                         "FROM executions WHERE id = ?", (new, (i + 1) * 1000, source_id))
            conn.execute(f"INSERT INTO task_runs (execution_id, {other_tasks}) SELECT ?, {other_tasks} "
                         "FROM task_runs WHERE execution_id = ?", (new, source_id))


def start_server(db: Path, workflows: Path, here: Path):
    log = open(here / "server.log", "wb")
    proc = subprocess.Popen([CLI, "server", "--db", str(db), "--workflows", str(workflows), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    for line in proc.stdout:
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            return proc, match.group(1), log
    raise SystemExit((here / "server.log").read_text())


def log_page(driver, url: str, execution_id: str, lines: int) -> dict:
    driver.get(f"{url}/executions/{execution_id}")
    t0 = time.monotonic()
    while "(complete)" not in driver.find_element("id", "live-state").text:
        if time.monotonic() - t0 > 1800:
            raise SystemExit("the page never got every line")
        time.sleep(0.2)
    loaded = driver.execute_script("return performance.now()") / 1000  # seconds since navigation
    bench = driver.execute_script("return window.__bench")
    status = driver.find_element("css selector", ".log-status").text
    shown = int(status.split(" ")[0].replace(",", ""))
    assert shown >= lines, f"the page has {status}, the execution {lines:,} plugin lines and more"
    mid, _ = driver.execute_async_script(SCROLL, "middle")
    end, last_row = driver.execute_async_script(SCROLL, "end")
    return {"first": bench["first"] / 1000, "loaded": loaded, "heap": heap_mb(driver), "mid": mid / 1000,
            "end": end / 1000, "stall": bench["stall"] / 1000, "status": status, "last_row": last_row}


def write_tail_workflow(workflows: Path, ticks: int) -> None:
    (workflows / "tail.yaml").write_text(
        "id: tail\nnamespace: bench\ntasks:\n  - id: tick\n    type: core/shell.run\n"
        f"    inputs: {{command: \"sleep 2; for i in $(seq 1 {ticks}); do echo tick $i $(date +%s%3N); sleep 0.05; done\"}}\n")


def tail_latency(driver, url: str, ticks: int) -> list[float]:
    import urllib.request

    request = urllib.request.Request(f"{url}/api/v1/executions", data=json.dumps({"workflow": "tail"}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request) as answer:
        execution_id = json.load(answer)["id"]
    driver.get(f"{url}/executions/{execution_id}")
    driver.execute_script(TAIL_PROBE)
    t0 = time.monotonic()
    while "(complete)" not in driver.find_element("id", "live-state").text and time.monotonic() - t0 < 300:
        time.sleep(0.2)
    seen = driver.execute_script("return window.__ticks")
    missing = ticks - len(seen)
    if missing:
        print(f"warning: {missing} ticks were not seen appearing (drawn while off screen?)")
    return sorted(seen.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--big-lines", type=int, default=1_000_000, help="0: skip")
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=200)
    args = parser.parse_args()
    print_header("web view: execution page, live tail, executions page (issue 14)")
    here = Path(tempfile.mkdtemp(prefix="bench-web-"))
    db, workflows = here / "kt.sqlite", here / "workflows"
    workflows.mkdir()
    print(f"preparing: runs of {args.lines:,} and {args.big_lines:,} lines, {args.executions:,} executions ...", flush=True)
    small = run_lines(db, here, args.lines)
    big = run_lines(db, here, args.big_lines) if args.big_lines else None
    copy_executions(db, small, args.executions)
    write_tail_workflow(workflows, args.ticks)
    proc, url, log = start_server(db, workflows, here)
    driver = browser()
    try:
        driver.get(f"{url}/workflows")  # a browser already running, as a user's is: not its start-up
        time.sleep(1)
        rows = []
        result = log_page(driver, url, small, args.lines)
        rows += [
            [f"{args.lines:,} lines: first line on screen", fmt(result["first"], " s"), "<= 1 s", verdict(result["first"], 1.0)],
            [f"{args.lines:,} lines: every line loaded", fmt(result["loaded"], " s"), result["status"], ""],
            [f"{args.lines:,} lines: JS heap after GC", fmt(result["heap"], " MB"), "<= 150 MB", verdict(result["heap"], 150)],
            [f"{args.lines:,} lines: scroll to the end", fmt(result["end"], " s"), "<= 1 s", verdict(result["end"], 1.0)],
            [f"{args.lines:,} lines: longest stall while loading", fmt(result["stall"], " s"), "", ""],
        ]
        if big:
            result = log_page(driver, url, big, args.big_lines)
            rows += [
                [f"{args.big_lines:,} lines: first line on screen", fmt(result["first"], " s"), "", ""],
                [f"{args.big_lines:,} lines: every line loaded", fmt(result["loaded"], " s"), result["status"], ""],
                [f"{args.big_lines:,} lines: JS heap after GC", fmt(result["heap"], " MB"), "", ""],
                [f"{args.big_lines:,} lines: scroll to the middle / end",
                 f"{fmt(result['mid'], ' s')} / {fmt(result['end'], ' s')}", "responsive", verdict(result["end"], 1.0)],
                [f"{args.big_lines:,} lines: longest stall while loading", fmt(result["stall"], " s"), "", ""],
            ]
        latencies = tail_latency(driver, url, args.ticks)
        p50 = percentile(latencies, 50)
        rows += [
            [f"live tail ({len(latencies)} lines): p50", fmt(p50, " ms"), "<= 250 ms", verdict(p50, 250)],
            ["live tail: p95 / worst", f"{fmt(percentile(latencies, 95), ' ms')} / {fmt(latencies[-1] if latencies else None, ' ms')}", "", ""],
        ]
        driver.get(f"{url}/")
        t0 = time.monotonic()
        while not driver.execute_script("return window.__bench.first") and time.monotonic() - t0 < 60:
            time.sleep(0.05)
        first = driver.execute_script("return window.__bench.first") / 1000
        rows.append([f"executions page ({args.executions + 1 + bool(big):,} executions): first row", fmt(first, " s"),
                     "<= 1 s", verdict(first, 1.0)])
        print_table(["measure", "value", "target", ""], rows)
    finally:
        driver.quit()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
        shutil.rmtree(here, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
