"""The server's own log: one line per event on stderr, as text or JSON (`--log-format`)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]

_ESCAPES = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F]}


def _one_line(text: str) -> str:
    """Control characters shown as escapes: a request's text can never start a fake line."""
    return text if text.isprintable() else text.translate(_ESCAPES)


class ServerLog:
    def __init__(self, log_format: LogFormat = "text", stream: TextIO | None = None) -> None:
        self.format = log_format
        self.stream = stream

    def info(self, message: str, **fields: Any) -> None:
        self._write("INFO", message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._write("WARN", message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self._write("ERROR", message, fields)

    def _write(self, level: str, message: str, fields: dict[str, Any]) -> None:
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        if self.format == "json":
            line = json.dumps({"time": stamp, "level": level, "message": message, **fields}, default=str)
        else:
            extra = " ".join(
                f"{key}={_one_line(value) if isinstance(value, str) and value and ' ' not in value else json.dumps(value, default=str)}"
                for key, value in fields.items()
            )
            line = f"{stamp} {level} {_one_line(message)}" + (f" {extra}" if extra else "")
        stream = self.stream or sys.stderr
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass
