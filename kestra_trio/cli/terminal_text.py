"""PURE: a program's own terminal output, shown on our terminal as the program meant it.

`execution logs` on a terminal uses this for log messages (`--raw`, a pipe, `--json` and
`--jsonl` do not). The web view applies the same rule; keep the two in step.

The rule, for each line of a message (a message is split at `\\n`; tabs are kept):

1. **A redrawn line shows its last state.** The line is cut at each carriage return (`\\r`)
   and the last non-empty piece is shown (so `10%\\r50%\\r100%` shows `100%`, and the `\\r`
   of a CRLF line end changes nothing). The colour sequences (2.) of the pieces it replaces
   still apply, as on a terminal.
2. **Colour and bold are rendered.** An SGR sequence `ESC [ params m` whose parameters are
   all among: empty or `0` (reset), `1` (bold), `22` (not bold), `30`–`37`, `39`, `90`–`97`
   (foreground), `40`–`47`, `49`, `100`–`107` (background), `38;5;N` / `48;5;N` (256 colours)
   and `38;2;R;G;B` / `48;2;R;G;B` (true colour), with N, R, G, B in 0–255 and at most
   `MAX_SGR_PARAMS` characters of parameters, is sent to the terminal. Without colour
   (`NO_COLOR`) it is removed instead.
3. **Everything else stays visible text**, escaped exactly as `formatting.literal` shows it
   today: any other SGR (underline, blink, reverse, conceal, ...) whole, every other escape
   sequence (cursor moves, clear screen, window titles), every other control character.
4. **Nothing leaks.** A line whose last rendered sequence is not a reset ends with `ESC [0m`,
   so a colour left on never reaches the next line.
"""

from __future__ import annotations

import re

from kestra_trio.cli.formatting import literal

__all__ = ["MAX_SGR_PARAMS", "RESET", "render"]

#: longer parameter lists are not colour a program meant: they stay escaped
MAX_SGR_PARAMS = 64
RESET = "\x1b[0m"

_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_SIMPLE = frozenset({0, 1, 22, 39, 49, *range(30, 38), *range(40, 48), *range(90, 98), *range(100, 108)})
_EXTENDED = {"5": 1, "2": 3}  # 38/48 ; 5 ; N  and  38/48 ; 2 ; R ; G ; B


def render(text: str, *, color: bool = True) -> str:
    """`text` for a terminal by the rule above; `color=False` removes colour instead of sending it."""
    if text.isprintable():  # the common case, checked in C
        return text
    return "\n".join([_line(line, color) for line in text.split("\n")])


def _line(line: str, color: bool) -> str:
    if "\r" in line:
        pieces = line.split("\r")
        last = max((i for i, piece in enumerate(pieces) if piece), default=len(pieces) - 1)
        carried = [m.group() for piece in pieces[:last] for m in _SGR.finditer(piece) if _is_colour(m.group(1))]
        line = "".join(carried) + pieces[last]
    shown: list[str] = []
    start = 0
    styled = False  # a rendered sequence left a colour or bold on
    for match in _SGR.finditer(line):
        shown.append(literal(line[start : match.start()]))
        if not _is_colour(match.group(1)):
            shown.append(literal(match.group()))
        elif color:
            shown.append(match.group())
            styled = match.group(1) not in ("", "0")
        start = match.end()
    shown.append(literal(line[start:]))
    if styled:
        shown.append(RESET)
    return "".join(shown)


def _is_colour(params: str) -> bool:
    """True when every SGR parameter is a colour, bold or a reset (rule 2)."""
    if len(params) > MAX_SGR_PARAMS:
        return False
    parts = params.split(";")
    i = 0
    while i < len(parts):
        code = int(parts[i] or 0)
        if code in (38, 48):
            kind = parts[i + 1] if i + 1 < len(parts) else ""
            size = _EXTENDED.get(kind)
            values = parts[i + 2 : i + 2 + size] if size else []
            if not size or len(values) != size or not all(value and int(value) <= 255 for value in values):
                return False
            i += 2 + size
        elif code in _SIMPLE:
            i += 1
        else:
            return False
    return True
