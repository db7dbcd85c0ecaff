#!/usr/bin/env python
"""Log pipeline benchmark (issue 6, target 2's ratio): LogCollector -> SQLite vs raw executemany.

For each size (10,000 and 1,000,000 entries) and batch size B (100 and 1,000), in the same
process and run, alternating:

* raw:       Python's sqlite3 on a fresh file created by `open_database` (our exact schema,
             both indexes, WAL, synchronous=NORMAL, the engine's pragmas), pre-built row tuples
             (metadata already JSON), `BEGIN IMMEDIATE; executemany(INSERT, B rows); COMMIT`.
* collector: the real `LogCollector(LogStore(db), batch_size=B, max_batch=B, linger=0.02)` on a
             fresh `open_database` file, fed pre-built `LogEntry` values (same rows: plugin
             source, the engine's metadata {plugin, action, attempt, stream}, one dict per task
             stream as `_LogEmitter` shares it) by P producers through `collector.sender()`.
             The clock runs from the first send to the flusher's return (all committed).
             Producer styles (--styles):
               - chunk:  `await send(list)` of SEND_CHUNK entries, as `_LogEmitter.lines` does
                 (the engine's path; this is the figure for the target);
               - nowait: one entry per `send_nowait` (`await send` only when full);
               - await:  `await send` per entry (the engine before chunked sends).

Rows/s = entries committed / seconds; ratio = collector / raw (target >= 70%). Also checks
that every entry was committed (COUNT(*) and `log_entry_count`); exit 1 otherwise.

    .venv/bin/python scripts/bench_log_pipeline.py                 # 10k and 1M, x3, engine-style chunks
    .venv/bin/python scripts/bench_log_pipeline.py --styles chunk,nowait,await --metadata per-entry  # diagnosis
    .venv/bin/python scripts/bench_log_pipeline.py --quick         # 10k and 200k
    .venv/bin/python scripts/bench_log_pipeline.py --cpu           # the collector's own CPU cost, no database

`--cpu` feeds 1,000,000 entries the same way into a sink that stores nothing and prints the
best of --repeat wall times: the cost of the channel, the bound and the batching alone,
without SQLite's noise (the script runs against whichever kestra_trio its Python imports).
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trio  # noqa: E402

from _bench_common import median, print_header, print_table, verdict  # noqa: E402
from kestra_trio.observability.collector import LogCollector  # noqa: E402
from kestra_trio.observability.records import LogEntry, LogLevel  # noqa: E402
from kestra_trio.storage.db import open_database  # noqa: E402
from kestra_trio.storage.logs import LogStore  # noqa: E402

try:  # entries per channel item the engine's stream reader sends (plugin_runtime/process.py)
    from kestra_trio.plugin_runtime.process import SEND_CHUNK  # noqa: E402
except ImportError:  # pragma: no cover - older engine
    SEND_CHUNK = 256

EXEC_ID = "benchexec0000001"
SOURCE = "plugin:core/shell.run"
INSERT = (
    "INSERT INTO execution_logs (execution_id, task_id, timestamp, level, source, message, metadata) "
    "VALUES (?,?,?,?,?,?,?)"
)
TASKS = 100


def make_entries(n: int, shared_metadata: bool) -> list[LogEntry]:
    base = 1_700_000_000_000
    per_task = max(1, n // TASKS)
    out = []
    shared = {}
    for i in range(n):
        t = i // per_task
        if shared_metadata:  # one dict per task stream, as plugin_runtime/process.py _LogEmitter shares it
            meta = shared.setdefault(t, {"plugin": "core/shell", "action": "run", "attempt": 1, "stream": "stdout"})
        else:  # a fresh dict per line (what _LogEmitter.entry did before the shared-metadata change)
            meta = {"plugin": "core/shell", "action": "run", "attempt": 1, "stream": "stdout"}
        out.append(
            LogEntry(EXEC_ID, f"t{t:04d}", LogLevel.INFO, SOURCE, f"line {i % per_task} of task t{t:04d}", meta, base + i // 50)
        )
    return out


def to_rows(entries: list[LogEntry]) -> list[tuple]:
    dump = json.dumps
    return [
        (e.execution_id, e.task_id, e.timestamp, str(e.level), e.source, e.message,
         dump(e.metadata, ensure_ascii=False, separators=(",", ":"), default=str))
        for e in entries
    ]


async def create_db(path: Path) -> None:
    """A fresh file with the engine's schema and pragmas, plus the execution row."""
    async with open_database(path) as db:
        def add(raw):
            raw.execute("BEGIN IMMEDIATE")
            raw.execute(
                "INSERT INTO executions (id, workflow_id, state, created_at, updated_at) VALUES (?, 'bench', 'RUNNING', 0, 0)",
                (EXEC_ID,),
            )
            raw.execute("COMMIT")

        await db.run(add)


def check(path: Path, n: int) -> str:
    con = sqlite3.connect(path)
    try:
        count = con.execute("SELECT COUNT(*) FROM execution_logs WHERE source = ?", (SOURCE,)).fetchone()[0]
        counter = con.execute("SELECT log_entry_count FROM executions WHERE id = ?", (EXEC_ID,)).fetchone()[0]
    finally:
        con.close()
    problems = []
    if count != n:
        problems.append(f"{count:,} rows committed, expected {n:,}")
    return "; ".join(problems) if problems else ("" if counter >= n else f"log_entry_count {counter} < {n}")


def bench_raw(path: Path, rows: list[tuple], batch: int) -> float:
    trio.run(create_db, path)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute("PRAGMA temp_store = MEMORY")
    con.execute("PRAGMA cache_size = -16000")
    gc.collect()
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        con.execute("BEGIN IMMEDIATE")
        con.executemany(INSERT, rows[i : i + batch])
        con.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    con.close()
    n = con_count(path)
    if n != len(rows):
        raise SystemExit(f"raw insert wrote {n} rows, expected {len(rows)}")
    return elapsed


def con_count(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT COUNT(*) FROM execution_logs").fetchone()[0]
    finally:
        con.close()


def bench_collector(path: Path, entries: list[LogEntry], batch: int, producers: int, style: str, chunk: int):
    trio.run(create_db, path)
    gc.collect()
    result = {}

    async def main():
        async with open_database(path) as db:
            collector = LogCollector(LogStore(db), batch_size=batch, max_batch=batch, linger=0.02)
            chunk = (len(entries) + producers - 1) // producers
            slices = [entries[i : i + chunk] for i in range(0, len(entries), chunk)]
            senders = [collector.sender() for _ in slices]

            async def produce_nowait(send, part):
                with send:
                    for e in part:
                        try:
                            send.send_nowait(e)
                        except trio.WouldBlock:
                            await send.send(e)

            async def produce_await(send, part):
                with send:
                    for e in part:
                        await send.send(e)

            async def produce_chunks(send, part):
                with send:
                    for i in range(0, len(part), chunk):
                        await send.send(part[i : i + chunk])

            produce = {"nowait": produce_nowait, "await": produce_await, "chunk": produce_chunks}[style]
            async with trio.open_nursery() as outer:
                await outer.start(collector.run)
                t0 = time.perf_counter()
                async with trio.open_nursery() as nursery:
                    for send, part in zip(senders, slices):
                        nursery.start_soon(produce, send, part)
                collector.close()
            result["elapsed"] = time.perf_counter() - t0
            result["stats"] = collector.statistics()

    trio.run(main)
    return result["elapsed"], result["stats"]


class NullSink:
    """Stores nothing: what is left of a run is the collector's own work."""

    async def insert_batch(self, entries) -> None:
        await trio.lowlevel.checkpoint()

    async def insert_batches(self, batches) -> int:
        await trio.lowlevel.checkpoint()
        return len(batches)


def bench_collector_cpu(entries: list[LogEntry], producers: int, chunk: int) -> float:
    async def main() -> float:
        collector = LogCollector(NullSink(), linger=0.02)
        part = (len(entries) + producers - 1) // producers
        slices = [entries[i : i + part] for i in range(0, len(entries), part)]

        async def produce(part_entries: list[LogEntry]) -> None:
            with collector.sender() as send:
                for i in range(0, len(part_entries), chunk):
                    await send.send(part_entries[i : i + chunk])

        t0 = time.perf_counter()
        async with trio.open_nursery() as outer:
            await outer.start(collector.run)
            async with trio.open_nursery() as nursery:
                for part_entries in slices:
                    nursery.start_soon(produce, part_entries)
            collector.close()
        return time.perf_counter() - t0

    gc.collect()
    return trio.run(main)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,1000000", help="entry counts (comma-separated)")
    ap.add_argument("--batches", default="100,1000", help="batch sizes (comma-separated)")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions for sizes <= 100,000 (median)")
    ap.add_argument("--big-repeat", type=int, default=3, help="repetitions for larger sizes")
    ap.add_argument("--producers", type=int, default=8, help="concurrent producers (tasks) feeding the collector")
    ap.add_argument("--quick", action="store_true", help="10k and 200k entries")
    ap.add_argument(
        "--styles",
        default="chunk",
        help="producer styles: await (await send per entry, as process.py), chunk (await send of a list of "
        "--chunk entries), nowait (send_nowait per entry: the collector alone)",
    )
    ap.add_argument("--chunk", type=int, default=SEND_CHUNK, help="entries per list in the chunk style (engine: SEND_CHUNK)")
    ap.add_argument(
        "--metadata",
        choices=["per-entry", "shared"],
        default="shared",
        help="shared: one metadata dict per task stream (process.py _LogEmitter); per-entry: a fresh dict per line",
    )
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument("--cpu", action="store_true", help="only the collector's own CPU cost (a sink that stores nothing)")
    args = ap.parse_args()
    if args.quick:
        args.sizes = "10000,200000"
    if args.cpu:
        print_header("bench_log_pipeline --cpu: the collector alone, into a sink that stores nothing")
        entries = make_entries(1_000_000, args.metadata == "shared")
        walls = [bench_collector_cpu(entries, args.producers, args.chunk) for _ in range(max(1, args.repeat))]
        print(
            f"1,000,000 entries, {args.producers} producers, chunks of {args.chunk}: "
            f"best {min(walls) * 1000:.0f} ms, median {median(walls) * 1000:.0f} ms (of {len(walls)})"
        )
        return 0

    print_header("bench_log_pipeline: LogCollector -> SQLite vs raw sqlite3 executemany (target 2 ratio)")
    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    styles = [x.strip() for x in args.styles.split(",") if x.strip()]
    print(f"producers {args.producers}, styles {styles}, chunk {args.chunk}, metadata {args.metadata}\n", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="kt-bench-logs-", dir=args.tmpdir))
    rows_out, problems = [], []
    seq = 0
    for n in sizes:
        entries = make_entries(n, args.metadata == "shared")
        rows = to_rows(entries)
        reps = args.repeat if n <= 100_000 else args.big_repeat
        for batch in batches:
            raw_t, coll_t = [], {s: [] for s in styles}
            stats = {}
            for rep in range(reps):
                seq += 1
                raw_t.append(bench_raw(tmp / f"raw-{seq}.db", rows, batch))
                for style in styles:
                    seq += 1
                    path = tmp / f"coll-{seq}.db"
                    elapsed, st = bench_collector(path, entries, batch, args.producers, style, args.chunk)
                    problem = check(path, n)
                    if problem:
                        problems.append(f"collector n={n} batch={batch} {style}: {problem}")
                    coll_t[style].append(elapsed)
                    stats[style] = st
                    for p in (path, Path(str(path) + "-wal"), Path(str(path) + "-shm")):
                        p.unlink(missing_ok=True)
                for p in tmp.glob(f"raw-{seq - len(styles)}.db*"):
                    p.unlink(missing_ok=True)
                print(
                    f"  n={n:,} batch={batch} rep {rep + 1}/{reps}: raw {n / raw_t[-1]:,.0f} rows/s; "
                    + "; ".join(f"collector[{s}] {n / coll_t[s][-1]:,.0f} rows/s" for s in styles),
                    flush=True,
                )
            raw_rate = n / median(raw_t)
            for style in styles:
                rate = n / median(coll_t[style])
                st = stats[style]
                rows_out.append(
                    [
                        f"{n:,}",
                        batch,
                        style,
                        f"{raw_rate:,.0f}",
                        f"{rate:,.0f}",
                        f"{rate / raw_rate * 100:.0f}%",
                        f"{st.batches:,}",
                        f"{st.flushed / max(1, st.batches):,.0f}",
                        st.overflow_episodes,
                        verdict(rate / raw_rate, 0.70, lower_is_better=False),
                    ]
                )
        del entries, rows
        gc.collect()
    shutil.rmtree(tmp, ignore_errors=True)
    print()
    print_table(
        ["entries", "batch", "producer", "raw rows/s", "collector rows/s", "ratio", "txns", "rows/txn", "overflow", "target >= 70%"],
        rows_out,
        title=(
            f"medians; collector fed by {args.producers} producers, metadata {args.metadata}; "
            "raw = sqlite3 executemany in transactions of `batch`"
        ),
    )
    if problems:
        for p in problems:
            print(f"CORRECTNESS FAILURE: {p}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
