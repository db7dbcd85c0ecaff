"""Argument types shared by the sub-commands."""

from __future__ import annotations

from typing import Annotated, Any

from cyclopts import Parameter

from kestra_trio.config import ascii_float, ascii_int


#: a whole number on the command line may reach SQLite, whose INTEGER is signed 64-bit
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _whole_number(type_: Any, tokens: Any) -> int:
    # cyclopts would round "1.5" to 2 and read "0x10" as 16: a count given as anything but
    # plain digits is a typo, and guessing what was meant would hide it
    text = tokens[0].value
    try:
        number = ascii_int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None
    if not _INT64_MIN <= number <= _INT64_MAX:
        shown = text.strip() if len(text.strip()) <= 24 else text.strip()[:20] + "..."
        raise ValueError(f"{shown} is out of range (whole numbers are at most {_INT64_MAX})")
    return number


def utf8_text(type_: Any, value: Any) -> None:
    """Every text argument must be UTF-8: argv bytes that are not arrive as lone surrogates,
    which no database column, HTTP request or terminal line can hold. The CLI's default
    validator; paths (`Path` arguments, `--db`) are exempt: a file name may be any bytes."""
    for item in value if isinstance(value, (list, tuple)) else (value,):
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("the value is not valid UTF-8 text") from None


def _number(type_: Any, tokens: Any) -> float:
    text = tokens[0].value  # float() would also take `inf`, `1_0` and other scripts' digits
    try:
        return ascii_float(text.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None


WholeNumber = Annotated[int, Parameter(converter=_whole_number)]
OptionalWholeNumber = Annotated[int | None, Parameter(converter=_whole_number)]
Number = Annotated[float, Parameter(converter=_number)]
OptionalNumber = Annotated[float | None, Parameter(converter=_number)]

#: `--db` of the commands that read or write executions and workflows
DbPath = Annotated[
    str | None,
    Parameter(
        name="--db", help="Database file (default: $KESTRA_TRIO_DB, else the per-user data folder).",
        validator=(),  # a file name, not text: any bytes (see utf8_text)
    ),
]

#: `--server` of the `execution` commands that also work against a running server
ServerUrl = Annotated[
    str | None,
    Parameter(
        name="--server",
        help="Ask this kestra-trio server instead of the local database (default: $KESTRA_TRIO_SERVER; "
        "token: $KESTRA_TRIO_TOKEN).",
    ),
]
