"""A scheduling service in a process of its own, for the tests and scripts/bench_triggers.py
that need real processes (kill -9, restart): the service parts `kestra-trio server` starts
besides HTTP — shared queue, triggers, --workflows folder — on the database given.

    python tests/service/scheduling_process.py DB WORKFLOWS_DIR [MAX_PARALLEL]

Prints `ready` once the folder is applied and the triggers run; stops on SIGTERM / SIGINT.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import trio

from kestra_trio.engine.context import EngineOptions
from kestra_trio.plugin_runtime.registry import PluginRegistry
from kestra_trio.service.app import ServiceConfig, open_service
from kestra_trio.service.scheduling import run_scheduling
from kestra_trio.storage.executions import DEFAULT_QUEUE


def report(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def main(db: str, workflows: str, max_parallel: int) -> None:
    options = EngineOptions(on_error=lambda m: report(f"error: {m}"), max_parallel=max_parallel)
    config = ServiceConfig(db, PluginRegistry.discover(), options, queues=(DEFAULT_QUEUE,))
    async with open_service(config) as service:
        await service.start(partial(run_scheduling, service, workflows_dir=Path(workflows), on_info=report))
        print("ready", flush=True)
        await service.stopping.wait()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 8)
