"""Argument types shared by the sub-commands."""

from __future__ import annotations

import re
from typing import Annotated, Any

from cyclopts import Parameter

_WHOLE = re.compile(r"[+-]?[0-9]+")


def _whole_number(type_: Any, tokens: Any) -> int:
    # cyclopts would round "1.5" to 2 and read "0x10" as 16: a count given as anything but
    # plain digits is a typo, and guessing what was meant would hide it
    text = tokens[0].value
    if not _WHOLE.fullmatch(text.strip()):
        raise ValueError(f"expected a whole number, got {text!r}")
    return int(text)


WholeNumber = Annotated[int, Parameter(converter=_whole_number)]
OptionalWholeNumber = Annotated[int | None, Parameter(converter=_whole_number)]
