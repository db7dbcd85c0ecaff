"""`run_server`: the service root with the server's parts, in one trio process.

Order matters for security and for "nothing lost": the token rule is checked and
`--workflows DIR` applied on the database BEFORE the service starts (a refused start claims
nothing), the listener is the last part to start and the last to close (during the drain
reads still work and starts get 503).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from kestra_trio.errors import UsageError
from kestra_trio.server.http.context import MIB, ApiContext
from kestra_trio.server.log import LogFormat, ServerLog
from kestra_trio.service.app import Service
from kestra_trio.storage.db import Database

#: largest request line + headers
MAX_HEAD_BYTES = 16 * 1024
#: seconds the listener waits for open requests (an SSE follow of a still-QUEUED run) once the drain is over
GRACEFUL_CLOSE_SECONDS = 2.0


@dataclass
class ServerConfig:
    db_path: Path
    registry: object  # PluginRegistry
    host: str = "127.0.0.1"
    port: int = 8080
    workflows_dir: Path | None = None
    max_parallel: int = 8
    kill_grace: float = 5.0
    drain_timeout: float = 30.0
    log_format: LogFormat = "text"
    max_body_bytes: int = MIB
    retention_days: int | None = None
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


async def check_tokens(db: Database, host: str) -> None:
    """A listener beyond loopback needs an API token first: nobody may reach it unauthenticated."""
    from kestra_trio.storage.tokens import TokenStore

    if not is_loopback(host) and not await TokenStore(db).any_active():
        raise UsageError(
            f"--host {host} is not a loopback address and no API token exists: create one first "
            "(`kestra-trio server token create NAME`), or keep the default --host 127.0.0.1"
        )


async def apply_workflows_dir(db: Database, directory: Path, registry, log: ServerLog) -> None:
    """`--workflows DIR` at start: every valid file becomes a revision (unchanged files keep
    theirs); invalid ones are logged and skipped — one bad file must not keep the others down."""
    from kestra_trio.service.registry import apply_loaded, load_files, workflow_files
    from kestra_trio.storage.workflows import WorkflowStore

    if not directory.is_dir():
        raise UsageError(f"--workflows {directory}: not a directory")
    loaded, problems = load_files(workflow_files([directory]), registry)
    for problem in problems:
        for line in problem.lines:
            log.error("workflow file skipped", file=str(problem.path), problem=line)
    for applied in await apply_loaded(WorkflowStore(db), loaded):
        log.info("workflow applied", workflow=applied.workflow_id, revision=applied.revision, created=applied.created)


async def serve_http(nursery: trio.Nursery, ctx: ApiContext, host: str, port: int, closed: trio.Event) -> str:
    """Start the HTTP listener in `nursery`; returns the URL it is bound to. It stops accepting
    when `closed` is set and ends once open requests are done (at most GRACEFUL_CLOSE_SECONDS)."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    from kestra_trio.server.http.app import build_app
    from kestra_trio.server.web import web_routes

    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host.strip("[]") else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None  # our own log says what happens (server/log.py)
    config.graceful_timeout = GRACEFUL_CLOSE_SECONDS
    config.include_server_header = False
    config.h11_max_incomplete_size = MAX_HEAD_BYTES  # request line + headers: larger is refused by hypercorn
    try:
        binds = await nursery.start(partial(serve, build_app(ctx, web_routes()), config, shutdown_trigger=closed.wait))
    except* OSError as group:  # the port is taken, the address is not ours (raised inside hypercorn's nursery)
        exc: BaseException = group
        while isinstance(exc, BaseExceptionGroup):
            exc = exc.exceptions[0]
        raise UsageError(f"cannot listen on {config.bind[0]}: {getattr(exc, 'strerror', None) or exc}") from None
    return binds[0]


async def start_server_parts(
    service: Service, ctx: ApiContext, config: ServerConfig, http: trio.Nursery, closed: trio.Event
) -> str:
    """THE seam of the server's long-lived parts: each is started here — the scheduling half
    (cron and flow triggers, the --workflows watcher, the lost-engine watchdog) with
    `service.start` in the service's nursery, before the listener; the listener in `http`,
    which `run_server` closes first at shutdown. Returns the listener's URL."""
    from kestra_trio.service.scheduling import run_scheduling

    await service.start(partial(
        run_scheduling, service, workflows_dir=config.workflows_dir, on_info=lambda message: ctx.log.info(message),
    ))
    return await serve_http(http, ctx, config.host, config.port, closed)


async def run_server(config: ServerConfig, *, on_listening=print) -> int:
    """Serve until SIGTERM/SIGINT, drain, and return the exit code (0; 128+N when a second
    signal N forced the stop)."""
    from kestra_trio.engine.context import EngineOptions
    from kestra_trio.secrets.masking import Masker
    from kestra_trio.secrets.providers import resolve_secrets
    from kestra_trio.service.app import ServiceConfig, open_service
    from kestra_trio.storage.db import open_database
    from kestra_trio.storage.executions import DEFAULT_QUEUE

    log = ServerLog(config.log_format)
    secrets = resolve_secrets(config.environ)
    async with open_database(config.db_path) as db:
        await check_tokens(db, config.host)
        if config.workflows_dir is not None:
            await apply_workflows_dir(db, config.workflows_dir, config.registry, log)
        options = EngineOptions(
            max_parallel=config.max_parallel, kill_grace=config.kill_grace, environ=config.environ,
            on_error=lambda message: log.error(message),
        )
        service_config = ServiceConfig(
            None, config.registry, options, queues=(DEFAULT_QUEUE,), retention_days=config.retention_days,
            drain_on_signal=True, on_warning=lambda message: log.warning(message),
        )
        async with open_service(service_config, db=db) as service, open_database(config.db_path) as reads:
            ctx = ApiContext(
                service, log, Masker(secrets.values()), tokens_always_required=not is_loopback(config.host),
                max_body_bytes=config.max_body_bytes, secrets=secrets, reads=reads,
            )
            closed = trio.Event()
            async with trio.open_nursery() as http:
                url = await start_server_parts(service, ctx, config, http, closed)
                log.info("listening", url=url, db=str(config.db_path), max_parallel=config.max_parallel)
                on_listening(f"kestra-trio server listening on {url}")
                await service.stopping.wait()
                log.info("shutting down: new starts get 503, running executions get "
                         f"{config.drain_timeout:g}s to finish", running=len(service.worker.running))
                await service.drain(config.drain_timeout)
                closed.set()
        forced = service.forced_by
    log.info("stopped", forced=forced.name if forced else None)
    return 128 + int(forced) if forced is not None else 0
