"""`kestra-trio db`: migrations, retention cleanup and size statistics for operators.

Heavy modules (sqlite-anyio, the stores) are imported inside the commands, so
`kestra-trio --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from cyclopts import App, Parameter

from kestra_trio.cli.params import WholeNumber
from kestra_trio.errors import ExitCode, StorageError

db_app = App(
    name="db",
    default_parameter=Parameter(negative=()),
)

DbOption = Annotated[
    Path | None,
    Parameter(name="--db", help="Database file (default: $KESTRA_TRIO_DB, else ~/.local/share/kestra-trio/kestra.db)."),
]


def _existing(path: Path) -> Path:
    if not path.exists():
        raise StorageError(f"no database at {path}; pass --db PATH or set KESTRA_TRIO_DB")
    return path


def _say(text: str = "") -> None:
    print(text, flush=True)


@db_app.command
async def migrate(*, db: DbOption = None) -> ExitCode:
    """Apply pending migrations (creating the database file if needed).

    Parameters
    ----------
    db
        Database file (default: $KESTRA_TRIO_DB, else ~/.local/share/kestra-trio/kestra.db).
    """
    from kestra_trio.config import resolve_db_path
    from kestra_trio.storage.db import open_database
    from kestra_trio.storage.migrate import apply_migrations, available_migrations, current_version

    path = resolve_db_path(db)
    names = {m.version: m.name for m in available_migrations()}
    async with open_database(path, migrate=False) as database:
        applied = await apply_migrations(database)
        version = await database.run(current_version)
    for number in applied:
        _say(f"applied migration {number:04d}_{names.get(number, '?')}")
    if applied:
        _say(f"database {path} is now at version {version}")
    else:
        _say(f"database is up to date (version {version})")
    return ExitCode.OK


@db_app.command
async def rollback(*, to: WholeNumber, db: DbOption = None) -> ExitCode:
    """Roll back every migration above version N, newest first (0 removes the whole schema).

    Parameters
    ----------
    to
        Version to roll back to (0, or a migration number).
    db
        Database file (default: $KESTRA_TRIO_DB, else ~/.local/share/kestra-trio/kestra.db).
    """
    from kestra_trio.config import resolve_db_path
    from kestra_trio.errors import UsageError
    from kestra_trio.storage.db import open_database
    from kestra_trio.storage.migrate import available_migrations, current_version, rollback as rollback_to

    if to < 0:
        raise UsageError("--to must be 0 or a migration version")

    path = _existing(resolve_db_path(db))
    names = {m.version: m.name for m in available_migrations()}
    async with open_database(path, migrate=False) as database:
        rolled = await rollback_to(database, to)
        version = await database.run(current_version)
    for number in rolled:
        _say(f"rolled back migration {number:04d}_{names.get(number, '?')}")
    if rolled:
        _say(f"database {path} is now at version {version}")
    else:
        _say(f"nothing to roll back (version {version})")
    return ExitCode.OK


@db_app.command
async def cleanup(*, dry_run: bool = False, db: DbOption = None) -> ExitCode:
    """Delete log lines and audit events older than the retention period.

    The period is KESTRA_TRIO_LOG_RETENTION_DAYS (default 30). Rows go in batches of
    1,000 per transaction, so running engines and readers keep working meanwhile.

    Parameters
    ----------
    dry_run
        Only count what would be deleted.
    db
        Database file (default: $KESTRA_TRIO_DB, else ~/.local/share/kestra-trio/kestra.db).
    """
    from kestra_trio.config import resolve_db_path, retention_days
    from kestra_trio.retention.purge import cleanup as run_cleanup
    from kestra_trio.storage.db import open_database

    days = retention_days()
    path = _existing(resolve_db_path(db))
    async with open_database(path) as database:
        report = await run_cleanup(database, retention_days=days, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    _say(f"retention: {days} days (rows older than {report.cutoff_text})")
    _say(f"{verb} {report.logs_deleted} log lines and {report.audit_deleted} audit events "
         f"in {report.batches} batch(es) of at most 1000 rows")
    if dry_run:
        _say("dry run: nothing was deleted")
    return ExitCode.OK


@db_app.command
async def stats(
    *,
    as_json: Annotated[bool, Parameter(name="--json", help="Print one JSON object.")] = False,
    db: DbOption = None,
) -> ExitCode:
    """Row counts and approximate on-disk size of the log and audit tables, file sizes, last cleanup.

    Warns when a table is over KESTRA_TRIO_SIZE_WARNING_BYTES (default 1 GB).

    Parameters
    ----------
    as_json
        Print one JSON object.
    db
        Database file (default: $KESTRA_TRIO_DB, else ~/.local/share/kestra-trio/kestra.db).
    """
    import json

    from kestra_trio.config import resolve_db_path, retention_days
    from kestra_trio.retention.policy import format_bytes, format_ms, size_warning_threshold
    from kestra_trio.retention.purge import size_warnings, table_stats
    from kestra_trio.storage.db import open_database

    threshold = size_warning_threshold()
    days = retention_days()
    path = _existing(resolve_db_path(db))
    async with open_database(path) as database:
        result = await table_stats(database)
    warnings = size_warnings(result, threshold, retention_days=days)
    if as_json:
        _say(json.dumps({
            "database": str(path),
            **result.to_dict(),
            "retention_days": days,
            "warning_threshold_bytes": threshold,
            "warnings": warnings,
        }))
        return ExitCode.OK
    how = "dbstat" if result.size_method == "dbstat" else "estimated from average row size"
    _say(f"database      {path}")
    _say(f"file          {format_bytes(result.file_bytes)} (+ {format_bytes(result.wal_bytes)} WAL)")
    _say(f"logs          {result.logs_rows} rows, ~{format_bytes(result.logs_bytes)}")
    _say(f"audit events  {result.audit_rows} rows, ~{format_bytes(result.audit_bytes)}")
    _say(f"sizes         {how}, tables with their indexes")
    _say(f"retention     {days} days")
    _say(f"last cleanup  {format_ms(result.last_cleanup)}")
    for line in warnings:
        _say(f"warning: {line}")
    return ExitCode.OK
