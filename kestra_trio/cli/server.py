"""`kestra-trio server`: run the service with its HTTP API; `server token …`: its API tokens."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

from cyclopts import App, Parameter

from kestra_trio.cli.params import DbPath, Number, OptionalNumber, OptionalWholeNumber, WholeNumber
from kestra_trio.errors import UsageError

server_app = App(name="server", backend="trio", default_parameter=Parameter(negative=()))
token_app = App(
    name="token", backend="trio", default_parameter=Parameter(negative=()),
    help="API tokens: create (shown once), list, revoke. Stored hashed in the database.",
)
server_app.command(token_app)


def _out(line: str) -> None:
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


def _duration(text: str) -> float:
    from kestra_trio.model.durations import parse_duration

    try:
        seconds = parse_duration(text.strip().lower()) if text.strip()[-1:].isalpha() else float(text)
    except ValueError:
        raise UsageError(f"--drain-timeout: expected a duration such as 30s or 2m, got {text!r}") from None
    if not 0 <= seconds <= 86400:
        raise UsageError("--drain-timeout must be between 0s and 24h")
    return seconds


@server_app.default
async def serve(
    *,
    workflows: Path | None = None,
    host: str = "127.0.0.1",
    port: WholeNumber = 8080,
    db: DbPath = None,
    max_parallel: OptionalWholeNumber = None,
    drain_timeout: str = "30s",
    log_format: Literal["text", "json"] = "text",
    plugins: list[Path] | None = None,
    kill_grace: OptionalNumber = None,
    max_body: Annotated[Number, Parameter(help="Largest request body in MiB (default 1).")] = 1.0,
) -> int:
    """Run workflows with nobody at the keyboard: the queue's workers and the HTTP API.

    SIGTERM or SIGINT drains: new starts get 503, running executions get --drain-timeout to
    finish, then are cancelled (`server shutdown`); exit 0 (128+N if a second signal N forced it).

    Parameters
    ----------
    workflows
        Apply the workflow files of this directory to the registry at start.
    host
        Address to listen on. Anything but loopback needs an API token first.
    port
        TCP port; 0 picks a free one (the address is printed on stdout).
    db
        Database file.
    max_parallel
        Tasks running at once across every execution (default: $KESTRA_TRIO_MAX_PARALLEL, else 8).
    drain_timeout
        How long running executions may take to finish at shutdown: 30s, 2m.
    log_format
        The server's own log on stderr: text or json (one object per line).
    plugins
        Extra plugin directories (also: KESTRA_TRIO_PLUGIN_PATH).
    kill_grace
        Seconds between SIGTERM and SIGKILL when a task is stopped (default 5).
    """
    from kestra_trio.config import kill_grace as resolve_kill_grace
    from kestra_trio.config import max_parallel as resolve_max_parallel
    from kestra_trio.config import resolve_db_path, retention_days
    from kestra_trio.plugin_runtime.registry import PluginRegistry
    from kestra_trio.server.http.context import MIB
    from kestra_trio.server.run import ServerConfig, run_server

    if not 0 <= port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    if not 0 < max_body <= 1024:
        raise UsageError(f"--max-body must be more than 0 and at most 1024 (MiB), got {max_body:g}")
    config = ServerConfig(
        db_path=resolve_db_path(db), registry=PluginRegistry.discover(extra_dirs=plugins or []), host=host, port=port,
        workflows_dir=workflows, max_parallel=resolve_max_parallel(max_parallel),
        kill_grace=resolve_kill_grace(kill_grace), drain_timeout=_duration(drain_timeout), log_format=log_format,
        max_body_bytes=int(max_body * MIB), retention_days=retention_days(),
    )
    return await run_server(config, on_listening=_out)


@token_app.command
async def create(name: str, /, *, db: DbPath = None) -> int:
    """Create an API token and print it (once: only its hash is stored).

    Parameters
    ----------
    name
        What the token is for (ci, grafana, alice).
    db
        Database file.
    """
    from kestra_trio.config import resolve_db_path
    from kestra_trio.storage.db import open_database
    from kestra_trio.storage.tokens import TokenStore

    if not name.strip() or len(name) > 100 or not name.isprintable():
        raise UsageError("the token name must be 1-100 printable characters")
    async with open_database(resolve_db_path(db)) as database:
        token_id, token = await TokenStore(database).create(name.strip())
    _out(token)
    sys.stderr.write(
        f"Token {token_id} ({name.strip()}) created. It is shown only now: send it as `Authorization: Bearer <token>`"
        " or KESTRA_TRIO_TOKEN.\n"
    )
    return 0


@token_app.command(name="list")
async def list_(*, as_json: Annotated[bool, Parameter(name="--json")] = False, db: DbPath = None) -> int:
    """List API tokens: id, name, created, last used, revoked (never the token).

    Parameters
    ----------
    as_json
        A JSON array.
    db
        Database file.
    """
    from kestra_trio.cli.formatting import dumps_pretty, literal_line
    from kestra_trio.config import resolve_db_path
    from kestra_trio.query.documents import iso_ms
    from kestra_trio.storage.db import open_database
    from kestra_trio.storage.tokens import TokenStore

    async with open_database(resolve_db_path(db), must_exist=True) as database:
        rows = await TokenStore(database).list()
    items = [
        {"id": r.id, "name": r.name, "created_at": iso_ms(r.created_at), "last_used_at": iso_ms(r.last_used_at),
         "revoked_at": iso_ms(r.revoked_at)}
        for r in rows
    ]
    if as_json:
        _out(dumps_pretty(items))
        return 0
    if not items:
        sys.stderr.write("No API tokens (`kestra-trio server token create NAME`)\n")
        return 0
    _out(f"{'ID':<10}{'NAME':<24}{'CREATED':<26}{'LAST USED':<26}STATUS")
    for item in items:
        status = "revoked" if item["revoked_at"] else "active"
        _out(f"{item['id']:<10}{literal_line(item['name'])[:23]:<24}{item['created_at']:<26}"
             f"{item['last_used_at'] or '-':<26}{status}")
    return 0


@token_app.command
async def revoke(token_id: str, /, *, db: DbPath = None) -> int:
    """Revoke an API token at once (requests with it get 401).

    Parameters
    ----------
    token_id
        The token's id (`server token list`).
    db
        Database file.
    """
    from kestra_trio.cli.formatting import literal_line
    from kestra_trio.config import resolve_db_path
    from kestra_trio.storage.db import open_database
    from kestra_trio.storage.tokens import TokenStore

    async with open_database(resolve_db_path(db), must_exist=True) as database:
        done = await TokenStore(database).revoke(token_id)
    shown = literal_line(token_id)
    if done is None:
        sys.stderr.write(f"kestra-trio: error: no API token {shown} (`kestra-trio server token list`)\n")
        return 1
    _out(f"Token {shown} revoked" if done else f"Token {shown} was already revoked")
    return 0
