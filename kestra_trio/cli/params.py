"""Argument types shared by the sub-commands."""

from __future__ import annotations

from typing import Annotated, Any

from cyclopts import Parameter

from kestra_trio.config import ascii_float, ascii_int


def _whole_number(type_: Any, tokens: Any) -> int:
    # cyclopts would round "1.5" to 2 and read "0x10" as 16: a count given as anything but
    # plain digits is a typo, and guessing what was meant would hide it
    text = tokens[0].value
    try:
        return ascii_int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


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
    Parameter(name="--db", help="Database file (default: $KESTRA_TRIO_DB, else the per-user data folder)."),
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
