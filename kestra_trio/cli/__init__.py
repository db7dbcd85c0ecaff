"""The `kestra-trio` command line.

Sub-commands are registered lazily ("module:function") so `--help` does not import the
engine, and `main()` is the one place where errors become one stderr line and an exit code.
"""

from __future__ import annotations

import sys

from cyclopts import App, Parameter

from kestra_trio import __version__
from kestra_trio.cli.params import utf8_text
from kestra_trio.errors import ExitCode, KestraTrioError

app = App(
    name="kestra-trio",
    help="Run YAML workflows on trio and debug every execution from the terminal.",
    version=__version__,
    backend="trio",
    default_parameter=Parameter(negative=(), validator=utf8_text),
)

# A lazily registered command has no docstring to show in the list until it is imported, so
# its help is written here (the functions' docstrings keep only their Parameters).
RUN_HELP = """Run a workflow and wait for it to finish.

Exit codes: 0 SUCCESS, 1 FAILED (or cancelled from another terminal), 2 invalid workflow or
arguments (nothing is created), 3 database problem, 130 Ctrl+C, 143 SIGTERM, 129 SIGHUP
(terminal closed)."""
VALIDATE_HELP = """Check workflow files and print every problem as FILE:LINE:COLUMN PATH: MESSAGE.

Exits 0 when every file is valid, 1 otherwise."""
SCHEMA_HELP = """Print the JSON Schema of workflow files, for editor completion and checks.

Save it with `kestra-trio schema > kestra-trio.schema.json` and point your editor's YAML
support at it (see docs/workflows.md)."""

app.command("kestra_trio.cli.run:run", name="run", help=RUN_HELP)
app.command("kestra_trio.cli.validate:validate", name="validate", help=VALIDATE_HELP)
app.command("kestra_trio.cli.validate:schema", name="schema", help=SCHEMA_HELP)
app.command(
    "kestra_trio.cli.execution:execution_app", name="execution",
    help="Read the logs, state and history of executions, cancel them; start them on a server (--server).",
)
app.command(
    "kestra_trio.cli.workflow:workflow_app", name="workflow",
    help="The workflow registry: apply files as revisions, list, show, history, enable or disable.",
)
app.command(
    "kestra_trio.cli.plugin:plugin_app", name="plugin",
    help="List, inspect and validate plugins (bundled, $KESTRA_TRIO_PLUGIN_PATH, --plugins DIR).",
)
app.command(
    "kestra_trio.cli.server:server_app", name="server",
    help="Run the service: the queue's workers and the HTTP API (`server token` manages API tokens).",
)
app.command(
    "kestra_trio.cli.db:db_app", name="db",
    help="Manage the SQLite database: migrations, retention cleanup, size statistics.",
)
app.register_install_completion_command(
    help="Install tab completion of commands and options for bash, zsh or fish (--shell; default: your shell).",
)


def _error_line(message: str) -> None:
    # plain write: a broken terminal or closed stderr must not turn into a traceback
    try:
        from kestra_trio.cli.formatting import literal_line

        # messages echo arguments and stored text: control characters and newlines are
        # shown as escapes, so the error is one line and the terminal executes nothing
        message = literal_line(message)
    except Exception:  # never let the error path fail
        message = message.encode("ascii", "backslashreplace").decode("ascii")
    try:
        sys.stderr.write(f"kestra-trio: error: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _reader_went_away(exc: BaseException) -> bool:
    """EPIPE on stdout (`kestra-trio --help | head -1`), however it surfaced.

    rich's `Console.on_broken_pipe` (used by cyclopts for --help and --version, and by our
    tables) points stdout at /dev/null and raises `SystemExit(1)` from inside its
    `except BrokenPipeError`: that SystemExit is a reader that went away, not a failure.
    """
    if isinstance(exc, BrokenPipeError):
        return True
    return isinstance(exc, SystemExit) and isinstance(exc.__context__, BrokenPipeError)


def _unexpected(exc: BaseException) -> int:
    import os
    import sqlite3

    if os.environ.get("KESTRA_TRIO_DEBUG"):
        raise exc
    if isinstance(exc, KeyboardInterrupt):
        return int(ExitCode.INTERRUPTED)
    if _reader_went_away(exc):
        return int(ExitCode.OK)
    if isinstance(exc, KestraTrioError):
        _error_line(str(exc))
        return int(exc.exit_code)
    if isinstance(exc, sqlite3.Error):
        _error_line(f"database error: {exc} (check the --db file, free disk space and permissions)")
        return int(ExitCode.DATABASE)
    if isinstance(exc, OSError):
        _error_line(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return int(ExitCode.FAILURE)
    _error_line(f"internal error: {type(exc).__name__}: {exc} (set KESTRA_TRIO_DEBUG=1 for details)")
    return int(ExitCode.FAILURE)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map every failure to one line and a documented exit code."""
    from cyclopts import CycloptsError

    tokens = sys.argv[1:] if argv is None else argv
    try:
        result = app(tokens, exit_on_error=False, print_error=False, result_action="return_value")
    except CycloptsError as exc:
        text = " ".join(str(exc).split())  # cyclopts wraps its messages over several lines
        _error_line(text or "invalid arguments; see --help")
        code = int(ExitCode.USAGE)
    except KestraTrioError as exc:
        _error_line(str(exc))
        code = int(exc.exit_code)
    except KeyboardInterrupt:
        code = int(ExitCode.INTERRUPTED)
    except BaseExceptionGroup as group:  # an async command's nursery: report its first real error
        code = _unexpected(_first_leaf(group))
    except BrokenPipeError:
        # `kestra-trio execution logs ... | head`: the reader went away; that is fine
        try:
            sys.stdout = None  # type: ignore[assignment]
        finally:
            code = int(ExitCode.OK)
    except SystemExit as exc:
        if not _reader_went_away(exc):  # a command's own sys.exit(): keep its code
            raise
        code = int(ExitCode.OK)  # `--help | head -1`: rich already sent stdout to /dev/null
    except Exception as exc:  # never a traceback for a user; KESTRA_TRIO_DEBUG=1 shows it
        code = _unexpected(exc)
    else:
        code = int(result) if isinstance(result, int) else int(ExitCode.OK)
    if argv is None:
        sys.exit(code)
    return code
