"""parse_duration / format_duration: the YAML duration forms and the human form."""

from __future__ import annotations

import pytest

from kestra_trio.model.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1m30s", 90.0),
        ("1h 30m", 5400.0),
        ("1d2h3m4s5ms", 93784.005),
        ("1.5s", 1.5),
        (" 10s ", 10.0),
        ("0s", 0.0),
        ("45", 45.0),
        (5, 5.0),
        (2.5, 2.5),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "xyz", "5 minutes", "10x", "-5s", "s", "30s5m", "1m1m", "ms", "1.s", True, -1, float("nan"), None])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)  # type: ignore[arg-type]


def test_error_message_shows_examples() -> None:
    with pytest.raises(ValueError) as info:
        parse_duration("xyz")
    assert str(info.value) == "invalid duration 'xyz' (examples: 500ms, 30s, 5m, 2h, 1d)"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0ms"),
        (0.5, "500ms"),
        (0.0123, "12ms"),
        (1, "1s"),
        (2.5, "2.5s"),
        (59.4, "59.4s"),
        (60, "1m"),
        (90, "1m 30s"),
        (3600, "1h"),
        (7500, "2h 5m"),
        (93600, "1d 2h"),
        (86400, "1d"),
        (-2.5, "-2.5s"),
        (float("inf"), "-"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
