"""console.py: colour only on a terminal, NO_COLOR honoured, nothing re-interpreted as markup."""

from __future__ import annotations

import io
import sys

import pytest

from kestra_trio.cli import console as C
from kestra_trio.cli.theme import STYLES, level_style, state_style


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not C.color_enabled(io.StringIO())
    assert C.color_enabled(FakeTTY())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not C.color_enabled(FakeTTY())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert C.color_enabled(io.StringIO())


def test_level_tags() -> None:
    assert C.level_tags(False) == {"DEBUG": "[DEBUG]", "INFO": "[INFO]", "WARN": "[WARN]", "ERROR": "[ERROR]"}
    tags = C.level_tags(True)
    assert tags["ERROR"] == "\x1b[31m[ERROR]\x1b[0m"
    assert tags["WARN"] == "\x1b[33m[WARN]\x1b[0m"
    assert tags["DEBUG"] == "\x1b[2m[DEBUG]\x1b[0m"
    assert tags["INFO"] == "[INFO]"


def test_consoles_print_text_literally(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    console = C.stdout_console()
    console.print("[bold]x[/x] :smile: 1.0 http://a")
    assert out.getvalue() == "[bold]x[/x] :smile: 1.0 http://a\n"
    assert console.width == C.PIPE_WIDTH  # not a terminal: no 80-column folding
    monkeypatch.setenv("COLUMNS", "120")
    assert C.stdout_console().width == 120


def test_no_color_console(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    monkeypatch.setenv("NO_COLOR", "1")
    from rich.text import Text

    C.stdout_console().print(Text("FAILED", style="kt.state.failed"))
    assert tty.getvalue() == "FAILED\n"


def test_theme_names() -> None:
    assert STYLES[state_style("SUCCESS")] == "green"
    assert STYLES[state_style("FAILED")] == "red"
    assert STYLES[state_style("RUNNING")] == "yellow"
    assert STYLES[state_style("PENDING")] == "dim"
    assert state_style("TIMED_OUT") == "kt.state.failed" and state_style("??") == "none"
    assert level_style("WARNING") == "kt.log.warn" and level_style("TRACE") == "kt.log.info"
