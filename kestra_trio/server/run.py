"""`run_server`: the service root with the server's parts, in one trio process.

Order matters for security and for "nothing lost": the token rule is checked first (before
anything listens), then the port is bound — and only once it is ours does anything with a
side effect happen (`--workflows DIR` applied, lost engines recovered, queued runs claimed,
triggers fired): a start refused for a taken port claims nothing. The listener is bound first
but serves last, once every other part runs, and closes last (during the drain reads still
work and starts get 503).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

from kestra_trio.errors import UsageError
from kestra_trio.server.http.context import MAX_HEAD_BYTES, MIB, ApiContext
from kestra_trio.server.log import LogFormat, ServerLog
from kestra_trio.service.app import Service
from kestra_trio.storage.db import Database

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


@dataclass
class BoundListener:
    """The listening sockets, bound before anything else starts, and hypercorn's settings."""

    config: Any  # hypercorn.config.Config
    sockets: list[socket.socket]


@contextlib.contextmanager
def bind_listener(host: str, port: int) -> Iterator[BoundListener]:
    """Bind and listen now, before anything with a side effect: a taken port or an address
    that is not ours refuses the start (UsageError, exit 2) with nothing claimed, fired or
    written. Connections wait in the backlog until `serve_http` serves. The sockets are closed
    on the way out if hypercorn never took them (closing twice is harmless)."""
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host.strip("[]") else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None  # our own log says what happens (server/log.py)
    config.graceful_timeout = GRACEFUL_CLOSE_SECONDS
    config.include_server_header = False
    # a request line + headers arriving in pieces beyond this is refused by h11; one arriving
    # in a single read is checked by our app (http/app.py `head_refusal`)
    config.h11_max_incomplete_size = MAX_HEAD_BYTES
    sockets: list[socket.socket] = []
    try:
        try:
            sockets = config.create_sockets().insecure_sockets
            for sock in sockets:
                sock.listen(config.backlog)
        except OSError as exc:
            raise UsageError(f"cannot listen on {config.bind[0]}: {exc.strerror or exc}") from None
        yield BoundListener(config, sockets)
    finally:
        for sock in sockets:
            sock.close()


async def serve_http(nursery: trio.Nursery, ctx: ApiContext, listener: BoundListener, closed: trio.Event) -> str:
    """Serve on the bound sockets in `nursery`; returns the URL. It stops accepting when
    `closed` is set and ends once open requests are done (at most GRACEFUL_CLOSE_SECONDS)."""
    from hypercorn.config import Sockets
    from hypercorn.trio.run import worker_serve  # what `hypercorn.trio.serve` runs, given our sockets
    from hypercorn.utils import wrap_app

    from kestra_trio.server.http.app import build_app
    from kestra_trio.server.web import web_routes

    config = listener.config
    app = wrap_app(build_app(ctx, web_routes()), config.wsgi_max_body_size, "asgi")
    binds = await nursery.start(partial(
        worker_serve, app, config, sockets=Sockets([], listener.sockets, []), shutdown_trigger=closed.wait,
    ))
    return binds[0]


async def start_server_parts(
    service: Service, ctx: ApiContext, config: ServerConfig, http: trio.Nursery, closed: trio.Event,
    listener: BoundListener,
) -> str:
    """THE seam of the server's long-lived parts: each is started here — the scheduling half
    (cron and flow triggers, the --workflows watcher, the lost-engine watchdog) with
    `service.start` in the service's nursery, before the listener; the listener (bound by
    `bind_listener` before the service started) in `http`, which `run_server` closes first at
    shutdown. Returns the listener's URL."""
    from kestra_trio.service.scheduling import run_scheduling

    await service.start(partial(
        run_scheduling, service, workflows_dir=config.workflows_dir, on_info=lambda message: ctx.log.info(message),
    ))
    return await serve_http(http, ctx, listener, closed)


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
        with bind_listener(config.host, config.port) as listener:  # nothing with a side effect before this
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
                    url = await start_server_parts(service, ctx, config, http, closed, listener)
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
