"""The only place a rich `Console` is built (stdout and stderr).

Rules every console here follows:
- `highlight=False`, `markup=False`, `emoji=False`: nothing we print is re-interpreted, so a
  plugin's `[/x]` or `:smile:` prints as written;
- colour only when the stream is a terminal, and never with `NO_COLOR` set (rich checks both);
- log output uses `soft_wrap=True`, so long lines are never re-wrapped or cut.

The hot path of `execution logs` does not use rich per line: when the output is not a
terminal it writes plain strings, and on a terminal it wraps only the level tag in the
ANSI codes computed once here (`level_tags`).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TextIO

from kestra_trio.cli import theme

if TYPE_CHECKING:
    from rich.console import Console


def color_enabled(stream: TextIO | None = None) -> bool:
    """True when `stream` (default stdout) is a terminal and `NO_COLOR` is not set.

    `FORCE_COLOR` (non-empty) forces colour, as rich does.
    """
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


#: width used when the output is not a terminal and COLUMNS is unset: a file or a pipe has no
#: width, and rich's default (80) would fold tables that a reader of the file can scroll
PIPE_WIDTH = 200


def _width(file: TextIO, width: int | None) -> int | None:
    if width is not None:
        return width
    try:
        if file.isatty():
            return None  # rich asks the terminal
    except (AttributeError, ValueError, OSError):
        pass
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else PIPE_WIDTH


class _TrailingSpaceTrimmer:
    """A file whose lines lose their trailing spaces: rich pads every table row to the
    table's width, which in a file or a pipe is only noise (and breaks `diff` and grep `$`)."""

    def __init__(self, file: TextIO) -> None:
        self._file = file
        self._partial = ""

    def write(self, text: str) -> int:
        head, newline, self._partial = (self._partial + text).rpartition("\n")
        if newline:
            self._file.write("\n".join(line.rstrip(" ") for line in head.split("\n")) + "\n")
        return len(text)

    def flush(self) -> None:
        if self._partial:  # rich ends what it prints with a newline; keep anything else as is
            self._file.write(self._partial)
            self._partial = ""
        self._file.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._file.fileno()


def is_terminal(file: TextIO) -> bool:
    """True when `file` is a terminal (a closed or odd stream is not)."""
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _console(file: TextIO, *, soft_wrap: bool, width: int | None) -> Console:
    from rich.console import Console

    return Console(
        file=file if is_terminal(file) else _TrailingSpaceTrimmer(file),  # type: ignore[arg-type]
        theme=theme.build_theme(),
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=soft_wrap,
        width=_width(file, width),
        no_color=bool(os.environ.get("NO_COLOR")) or None,
    )


def stdout_console(*, soft_wrap: bool = False, width: int | None = None) -> Console:
    """Console for command output (tables, trees, log lines on a terminal)."""
    return _console(sys.stdout, soft_wrap=soft_wrap, width=width)


def stderr_console(*, width: int | None = None) -> Console:
    """Console for notes and messages that are not the command's data."""
    return _console(sys.stderr, soft_wrap=True, width=width)


LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")


def level_tags(color: bool) -> dict[str, str]:
    """`{"ERROR": "[ERROR]", ...}`, wrapped in the theme's ANSI codes when `color` is true.

    Computed once per command, so printing a line costs one dict lookup, not a rich render.
    Unknown levels fall back to `[LEVEL]` uncoloured (see `formatting.LogLineFormatter`).
    """
    tags = {level: f"[{level}]" for level in LEVELS}
    if not color:
        return tags
    from rich.color import ColorSystem
    from rich.style import Style

    for level in LEVELS:
        spec = theme.STYLES[theme.level_style(level)]
        if spec != "none":
            tags[level] = Style.parse(spec).render(tags[level], color_system=ColorSystem.STANDARD)
    return tags
