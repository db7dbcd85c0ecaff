"""streams.py: the pure core that turns untrusted bytes into bounded lines."""

from __future__ import annotations

import tracemalloc

import pytest

from kestra_trio.observability.records import LogLevel
from kestra_trio.plugin_runtime.streams import (
    LineSplitter,
    OutputBudget,
    classify,
    for_terminal,
    plain_level,
)
from kestra_trio.secrets.masking import Masker


def split(*chunks: bytes, max_line: int = 64 * 1024) -> list[str]:
    splitter = LineSplitter(max_line)
    lines: list[str] = []
    for chunk in chunks:
        lines += splitter.feed(chunk)
    return lines + splitter.close()


def test_multi_line_and_chunk_boundaries() -> None:
    assert split(b"a\nbb\nc") == ["a", "bb", "c"]
    assert split(b"he", b"llo\nwor", b"ld\n") == ["hello", "world"]
    assert split(b"\n\n") == ["", ""]
    assert split(b"") == []


def test_crlf_and_lone_cr() -> None:
    assert split(b"a\r\nb\r", b"\n") == ["a", "b"]
    assert split(b"a\rb\n") == ["a\rb"]  # only a \r right before \n is dropped
    assert split(b"x\r") == ["x"]  # last line without newline


def test_invalid_utf8_is_replaced() -> None:
    assert split(b"ok \xff\xfe end\n") == ["ok \ufffd\ufffd end"]
    assert split("é".encode()[:1], "é".encode()[1:] + b"\n") == ["é"]  # split across chunks
    assert split(bytes(range(256)) + b"\n")[0].startswith("\x00\x01")


def test_long_line_is_cut_with_marker() -> None:
    lines = split(b"x" * 100 + b"\nnext\n", max_line=10)
    assert lines == ["x" * 10 + " …[line truncated: 90 bytes dropped]", "next"]
    # exactly at the limit: no marker; \r\n after a cut line is not counted as dropped
    assert split(b"y" * 10 + b"\n", max_line=10) == ["y" * 10]
    assert split(b"z" * 12 + b"\r\n", max_line=10) == ["z" * 10 + " …[line truncated: 2 bytes dropped]"]


@pytest.mark.parametrize("k", range(1, 12))
def test_a_secret_straddling_the_line_cut_is_masked_before_the_marker(k: int) -> None:
    # the QA case: the secret starts k bytes before the cut, in one chunk or split across reads
    secret = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    data = b"a" * (64 - k) + secret.encode() + b"\n"
    expected = "a" * (64 - k) + "***SECRET***" + f" …[line truncated: {26 - k} bytes dropped]"
    for chunks in ([data], [data[:60], data[60:]], [bytes([b]) for b in data]):
        splitter = LineSplitter(64, mask_cut=Masker([secret]).mask_cut)
        lines = [line for chunk in chunks for line in splitter.feed(chunk)] + splitter.close()
        assert lines == [expected]


def test_lines_that_are_not_cut_are_left_to_the_collector() -> None:
    seen: list[str] = []
    splitter = LineSplitter(64, mask_cut=lambda text: seen.append(text) or text)
    assert splitter.feed(b"ABC short line\n") == ["ABC short line"]
    assert seen == []


def test_cut_never_splits_a_character() -> None:
    (line,) = split("é".encode() * 10 + b"\n", max_line=5)  # 2-byte chars: cut at 4
    assert line == "éé …[line truncated: 16 bytes dropped]"


def test_default_cut_is_64_kib() -> None:
    (line,) = split(b"a" * (200 * 1024) + b"\n")
    assert line == "a" * 65536 + f" …[line truncated: {200 * 1024 - 65536} bytes dropped]"


def test_50_mb_single_line_keeps_memory_bounded() -> None:
    chunk = b"q" * (64 * 1024)  # the same object fed 800 times: the input costs nothing
    splitter = LineSplitter()
    tracemalloc.start()
    try:
        for _ in range(800):
            assert splitter.feed(chunk) == []
        lines = splitter.feed(b"\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines[0].endswith(f"[line truncated: {800 * 65536 - 65536} bytes dropped]")
    assert peak < 1024 * 1024, f"peak {peak} bytes"


@pytest.mark.parametrize(
    ("line", "stream", "level"),
    [
        ("ERROR something broke", "stdout", LogLevel.ERROR),
        ("ERROR: something broke", "stdout", LogLevel.ERROR),
        ("[error] x", "stdout", LogLevel.ERROR),
        ("[ERROR] x", "stderr", LogLevel.ERROR),
        ("level=error msg=x", "stdout", LogLevel.ERROR),
        ('time=2024-01-01T00:00:00Z level=warning msg="x y"', "stdout", LogLevel.WARN),
        ("WARN disk almost full", "stdout", LogLevel.WARN),
        ("WARNING:root:deprecated", "stderr", LogLevel.WARN),
        ("[warn] x", "stdout", LogLevel.WARN),
        ("level=warning", "stdout", LogLevel.WARN),
        ("INFO started", "stderr", LogLevel.INFO),
        ("DEBUG details", "stdout", LogLevel.DEBUG),
        ("CRITICAL: gone", "stdout", LogLevel.ERROR),
        ("FATAL gone", "stdout", LogLevel.ERROR),
        ("Error: file not found", "stderr", LogLevel.ERROR),
        ("2024-05-01 12:00:00,123 ERROR boom", "stdout", LogLevel.ERROR),
        ("2024-05-01T12:00:00.5+02:00 [warn] slow", "stdout", LogLevel.WARN),
        ("12:00:01 INFO tick", "stderr", LogLevel.INFO),
        # no level token: stdout INFO, stderr WARN (never ERROR just for being on stderr)
        ("plain output", "stdout", LogLevel.INFO),
        ("plain complaint", "stderr", LogLevel.WARN),
        ("E something", "stderr", LogLevel.WARN),
        ("ERRORS: 0", "stdout", LogLevel.INFO),
        ("error handling done", "stdout", LogLevel.INFO),
        ("Information follows", "stdout", LogLevel.INFO),
        ("no ERROR here", "stderr", LogLevel.WARN),
        ("", "stderr", LogLevel.WARN),
    ],
)
def test_level_detection(line: str, stream: str, level: LogLevel) -> None:
    got, message, metadata = classify(line, stream)  # type: ignore[arg-type]
    assert (got, message, metadata) == (level, line, {})


def test_sdk_record_on_stderr_takes_its_level_message_and_metadata() -> None:
    line = '{"kt": "log", "level": "error", "message": "disk full", "metadata": {"disk": "/"}}'
    assert classify(line, "stderr") == (LogLevel.ERROR, "disk full", {"disk": "/"})
    assert classify(line, "stdout")[0] == LogLevel.INFO  # records are a stderr-only channel
    assert classify('{"kt": "log", "level": "bogus", "message": "x"}', "stderr")[0] == LogLevel.WARN
    assert classify('{"kt": "log", "message": 3}', "stderr")[0] == LogLevel.WARN
    assert classify('{"other": 1}', "stderr") == (LogLevel.WARN, '{"other": 1}', {})


def test_plain_level_none_without_token() -> None:
    assert plain_level("hello") is None
    assert plain_level("eRRoR: odd case") is None


def test_for_terminal_neutralises_escapes_and_controls() -> None:
    assert for_terminal("plain [bold]text[/bold]") == "plain [bold]text[/bold]"
    assert for_terminal("\x1b[31mred\x1b[0m") == "red"
    assert for_terminal("\x1b]0;title\x07after") == "after"
    assert for_terminal("bell\x07 nul\x00 del\x7f") == "bell\\x07 nul\\x00 del\\x7f"
    assert for_terminal("tab\tkept") == "tab\tkept"
    assert for_terminal("a\rb\nc") == "a\\x0db\\x0ac"
    assert for_terminal("\u202egnp.exe") == "\\u202egnp.exe"
    assert for_terminal("\x9b31m") == "\\x9b31m"


def test_budget_under_limit_emits_everything() -> None:
    budget = OutputBudget(limit=100, tail_bytes=10)
    assert all(budget.admit("stdout", "x" * 9) for _ in range(10))
    assert budget.finish() is None


def test_budget_keeps_tail_and_counts_drops() -> None:
    budget = OutputBudget(limit=20, tail_bytes=8)
    admitted = [budget.admit("stdout" if i % 2 else "stderr", f"l{i}") for i in range(20)]
    assert admitted[:6] == [True] * 6 and not any(admitted[6:])  # 3 bytes per line counted
    report = budget.finish()
    assert report is not None
    assert report.tail == [("stderr", "l18"), ("stdout", "l19")]
    assert (report.dropped_lines, report.dropped_bytes) == (12, 4 * 3 + 8 * 4)  # l6..l17
    assert "12 line(s)" in report.message()
