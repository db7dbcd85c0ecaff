"""terminal_text.render: the rule for showing a program's own terminal output (see its docstring)."""

from __future__ import annotations

import pytest

from kestra_trio.cli.formatting import LogLineFormatter, literal
from kestra_trio.cli.terminal_text import MAX_SGR_PARAMS, render

E = "\x1b"


@pytest.mark.parametrize(
    ("text", "coloured", "plain"),
    [
        ("plain text", "plain text", "plain text"),
        # pytest's dots, pip's and cargo's colours: rendered, and switched off at the end of the line
        (f"{E}[32m.{E}[0m", f"{E}[32m.{E}[0m", "."),
        (f"{E}[1m{E}[31merror{E}[0m: x", f"{E}[1m{E}[31merror{E}[0m: x", "error: x"),
        (f"{E}[1;32mok", f"{E}[1;32mok{E}[0m", "ok"),  # left on: reset added
        (f"{E}[mreset{E}[;1mbold", f"{E}[mreset{E}[;1mbold{E}[0m", "resetbold"),  # empty parameters mean 0
        (f"{E}[22;39;49;97;107mx", f"{E}[22;39;49;97;107mx{E}[0m", "x"),
        (f"{E}[38;5;196mred{E}[48;5;0m", f"{E}[38;5;196mred{E}[48;5;0m{E}[0m", "red"),
        (f"{E}[38;2;255;128;0morange", f"{E}[38;2;255;128;0morange{E}[0m", "orange"),
        # not colour or bold: the whole sequence stays escaped, as before
        (f"{E}[4munder{E}[0m", f"\\x1b[4munder{E}[0m", "\\x1b[4munder"),
        (f"{E}[1;8mhidden", "\\x1b[1;8mhidden", "\\x1b[1;8mhidden"),  # conceal
        (f"{E}[7mrev", "\\x1b[7mrev", "\\x1b[7mrev"),
        (f"{E}[38;5;256mx", "\\x1b[38;5;256mx", "\\x1b[38;5;256mx"),
        (f"{E}[38;2;1;2mx", "\\x1b[38;2;1;2mx", "\\x1b[38;2;1;2mx"),
        (f"{E}[38mx", "\\x1b[38mx", "\\x1b[38mx"),
        (f"{E}[2J{E}[Hclear", "\\x1b[2J\\x1b[Hclear", "\\x1b[2J\\x1b[Hclear"),
        (f"{E}]0;title\x07x", "\\x1b]0;title\\x07x", "\\x1b]0;title\\x07x"),
        (f"{E}[31", "\\x1b[31", "\\x1b[31"),  # cut off
        ("a\x00b\tc\u202e", "a\\x00b\tc\\u202e", "a\\x00b\tc\\u202e"),
        ("[bold]not markup[/x]", "[bold]not markup[/x]", "[bold]not markup[/x]"),
        # a line redrawn with \r shows its last state; earlier colours still apply
        ("10%\r50%\r100%", "100%", "100%"),
        ("done\r", "done", "done"),  # CRLF output
        ("\r\r", "", ""),
        (f"{E}[32m 10%\r 20%\r100%", f"{E}[32m100%{E}[0m", "100%"),
        (f"{E}[4m10%\r100%", "100%", "100%"),  # an escaped sequence in a replaced piece is gone with it
        # each line of a multi-line message on its own
        (f"{E}[31mone\ntwo\r2", f"{E}[31mone{E}[0m\n2", "one\n2"),
    ],
)
def test_render(text: str, coloured: str, plain: str) -> None:
    assert render(text) == coloured
    assert render(text, color=False) == plain


def test_a_long_parameter_list_is_not_colour() -> None:
    params = ";".join(["1"] * (MAX_SGR_PARAMS // 2 + 1))
    assert len(params) > MAX_SGR_PARAMS
    assert render(f"{E}[{params}mx") == literal(f"{E}[{params}mx")


def test_log_lines_use_the_view_and_keep_their_indent() -> None:
    line = LogLineFormatter(show=render)(1_795_256_130_000, "INFO", "plugin:core/shell.run", f"{E}[32mok\nnext\r2")
    assert line == f"[2026-11-21T10:15:30.000Z] [INFO] [plugin:core/shell.run] {E}[32mok{E}[0m\n" + " " * 58 + "2\n"
    escaped = LogLineFormatter()(1_795_256_130_000, "INFO", "worker", f"{E}[32mok\r2")
    assert escaped == "[2026-11-21T10:15:30.000Z] [INFO] [worker] \\x1b[32mok\\r2\n"
