"""The `kestra-trio` command line.

Sub-commands are registered lazily ("module:function") so `--help` does not import the
engine, and `main()` is the one place where errors become one stderr line and an exit code.
"""

from __future__ import annotations

import sys

from cyclopts import App, Parameter

from kestra_trio import __version__
from kestra_trio.errors import ExitCode, KestraTrioError

app = App(
    name="kestra-trio",
    help="Run YAML workflows on trio and debug every execution from the terminal.",
    version=__version__,
    backend="trio",
    default_parameter=Parameter(negative=()),
)

app.command("kestra_trio.cli.run:run", name="run")
app.command("kestra_trio.cli.validate:validate", name="validate")
app.command("kestra_trio.cli.validate:schema", name="schema")
app.command("kestra_trio.cli.execution:execution_app", name="execution")
app.command("kestra_trio.cli.plugin:plugin_app", name="plugin")
app.command("kestra_trio.cli.db:db_app", name="db")


def _error_line(message: str) -> None:
    # plain write: a broken terminal or closed stderr must not turn into a traceback
    try:
        sys.stderr.write(f"kestra-trio: error: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map every failure to one line and a documented exit code."""
    from cyclopts import CycloptsError

    tokens = sys.argv[1:] if argv is None else argv
    try:
        result = app(tokens, exit_on_error=False, print_error=False, result_action="return_value")
    except CycloptsError as exc:
        text = " ".join(str(exc).split())
        _error_line(text or "invalid arguments; see --help")
        code = int(ExitCode.USAGE)
    except KestraTrioError as exc:
        _error_line(str(exc))
        code = int(exc.exit_code)
    except KeyboardInterrupt:
        code = int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # `kestra-trio execution logs ... | head`: the reader went away; that is fine
        try:
            sys.stdout = None  # type: ignore[assignment]
        finally:
            code = int(ExitCode.OK)
    else:
        code = int(result) if isinstance(result, int) else int(ExitCode.OK)
    if argv is None:
        sys.exit(code)
    return code
