"""The plugin wire protocol, version 1: the single source of truth for every message.

A plugin is any program. The engine starts it with:

* **stdin**: exactly one JSON object (the *input message*, :func:`encode_input`), then EOF;
* **env** ``KESTRA_TRIO_RESULT_FILE``: a path to an empty file the plugin overwrites with
  its *result* (:func:`encode_outputs` / :func:`encode_error`) before exiting;
* **stdout / stderr**: free-form log text, one line per log entry. A stderr line that is a
  *log record* (:func:`encode_log_record`) carries its own level, message and metadata.

The result travels apart from stdout so that nothing a plugin prints can be mistaken for
its result. This module is stdlib-only (plugins import it) and does no I/O.
"""

from __future__ import annotations

import json
import sys
TYPE_CHECKING = False  # not `from typing import`: typing costs ~2 ms at every plugin start

if TYPE_CHECKING:  # typing/dataclasses cost milliseconds at plugin start; keep them out
    from collections.abc import Mapping
    from typing import Any

PROTOCOL_VERSION = 1

#: env var naming the file the plugin writes its result to
RESULT_FILE_ENV = "KESTRA_TRIO_RESULT_FILE"
#: informational env vars (the input message is authoritative)
EXECUTION_ID_ENV = "KESTRA_TRIO_EXECUTION_ID"
TASK_ID_ENV = "KESTRA_TRIO_TASK_ID"
ATTEMPT_ENV = "KESTRA_TRIO_ATTEMPT"
PLUGIN_DIR_ENV = "KESTRA_TRIO_PLUGIN_DIR"

#: the key and value that mark a stderr line as a structured log record
RECORD_KEY = "kt"
RECORD_LOG = "log"
#: the levels a record may carry (lower-case and WARNING/CRITICAL/FATAL are accepted too)
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
_LEVEL_ALIASES = {
    "DEBUG": "DEBUG",
    "TRACE": "DEBUG",
    "INFO": "INFO",
    "NOTICE": "INFO",
    "WARN": "WARN",
    "WARNING": "WARN",
    "ERROR": "ERROR",
    "CRITICAL": "ERROR",
    "FATAL": "ERROR",
}

#: the engine refuses result files larger than this (a result is data, not a log)
MAX_RESULT_BYTES = 16 * 1024 * 1024


class ProtocolError(ValueError):
    """a message does not follow the plugin protocol."""


class InputMessage:
    """What the engine writes to the plugin's stdin."""

    __slots__ = ("action", "inputs", "execution_id", "task_id", "attempt", "secrets", "protocol")

    def __init__(
        self,
        action: str,
        inputs: dict[str, Any],
        execution_id: str = "",
        task_id: str = "",
        attempt: int = 1,
        secrets: dict[str, str] | None = None,
        protocol: int = PROTOCOL_VERSION,
    ) -> None:
        self.action = action
        self.inputs = inputs
        self.execution_id = execution_id
        self.task_id = task_id
        self.attempt = attempt
        self.secrets = dict(secrets or {})
        self.protocol = protocol

    def __repr__(self) -> str:  # never show secret values
        return f"InputMessage(action={self.action!r}, task_id={self.task_id!r}, attempt={self.attempt})"


class Result:
    """A decoded result file: exactly one of ``outputs`` or ``error`` is set."""

    __slots__ = ("outputs", "error")

    def __init__(self, outputs: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> None:
        self.outputs = outputs
        self.error = error

    def __repr__(self) -> str:
        return f"Result(outputs={self.outputs!r}, error={self.error!r})"


class NotJson(ValueError):
    """What `loads_untrusted` refuses beyond JSON syntax, said in our words."""


def _no_constant(name: str) -> Any:
    raise NotJson(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise NotJson(f"number {text[:40]} is too large")
    return value


def _surrogate_free(value: Any) -> Any:
    """Lone surrogates (``"\\ud800"`` in JSON) cannot be stored or printed as UTF-8."""
    if isinstance(value, str):
        if not has_surrogate(value):
            return value
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    if isinstance(value, list):
        return [_surrogate_free(v) for v in value]
    if isinstance(value, dict):
        return {_surrogate_free(k): _surrogate_free(v) for k, v in value.items()}
    return value


def has_surrogate(text: str) -> bool:
    """True for text that cannot be UTF-8 (lone surrogates: undecodable argv bytes, `"\\ud800"`)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def loads_untrusted(data: bytes | str) -> Any:
    """json.loads for what a plugin wrote: only real JSON (no NaN / Infinity, no overflowing
    numbers), never a RecursionError, and no lone surrogates in the strings it returns.
    Raises json.JSONDecodeError (not JSON), UnicodeDecodeError (bytes that are not UTF-8) or
    NotJson saying what else is wrong."""
    try:
        value = json.loads(data, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise NotJson("JSON nested too deeply") from None
    except (json.JSONDecodeError, UnicodeDecodeError, NotJson):
        raise
    except ValueError:  # int() past sys.get_int_max_str_digits(): Python's words name interpreter settings
        raise NotJson(f"a number has too many digits (at most {sys.get_int_max_str_digits():,})") from None
    text = data if isinstance(data, str) else None
    if text is not None and "\\u" not in text and not has_surrogate(text):
        return value  # no escape that could make a surrogate: skip the walk
    if isinstance(data, bytes) and b"\\u" not in data:
        return value
    try:
        return _surrogate_free(value)
    except RecursionError:
        raise NotJson("JSON nested too deeply") from None


def encode_input(message: InputMessage) -> bytes:
    """The stdin payload: one JSON object followed by a newline."""
    payload = {
        "protocol": message.protocol,
        "action": message.action,
        "inputs": message.inputs,
        "execution_id": message.execution_id,
        "task_id": message.task_id,
        "attempt": message.attempt,
        "secrets": dict(message.secrets),
    }
    return (json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def decode_input(data: bytes | str) -> InputMessage:
    """Parse the stdin payload; raises ProtocolError saying what is wrong."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise ProtocolError(f"stdin is not one JSON object: {exc}") from None
    if not isinstance(raw, dict):
        raise ProtocolError("stdin must be one JSON object")
    version = raw.get("protocol")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {version!r} (this SDK speaks {PROTOCOL_VERSION})")
    action, inputs = raw.get("action"), raw.get("inputs", {})
    if not isinstance(action, str) or not action:
        raise ProtocolError("input message has no 'action' string")
    if not isinstance(inputs, dict):
        raise ProtocolError("'inputs' must be a JSON object")
    secrets = raw.get("secrets") or {}
    if not isinstance(secrets, dict):
        raise ProtocolError("'secrets' must be a JSON object")
    return InputMessage(
        action=action,
        inputs=inputs,
        execution_id=str(raw.get("execution_id", "")),
        task_id=str(raw.get("task_id", "")),
        attempt=int(raw.get("attempt", 1)),
        secrets={str(k): str(v) for k, v in secrets.items()},
        protocol=version,
    )


def encode_outputs(outputs: Mapping[str, Any]) -> bytes:
    """A success result. Raises TypeError/ValueError when outputs are not JSON data."""
    return json.dumps({"outputs": dict(outputs)}, ensure_ascii=False, allow_nan=False).encode()


def encode_error(message: str, type: str = "Error", stack: str | None = None) -> bytes:  # noqa: A002
    """A failure result; ``stack`` is free text (a traceback) shown by `execution inspect`."""
    error: dict[str, Any] = {"message": message, "type": type}
    if stack:
        error["stack"] = stack
    return json.dumps({"error": error}, ensure_ascii=False).encode()


def decode_result(data: bytes) -> Result:
    """Parse a result file; raises ProtocolError saying what is wrong."""
    if not data.strip():
        raise ProtocolError("the result file is empty")
    try:
        raw = loads_untrusted(data)
    except ValueError as exc:
        raise ProtocolError(f"the result file is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or ("outputs" in raw) == ("error" in raw):
        raise ProtocolError('the result must be a JSON object with exactly one of "outputs" or "error"')
    if "outputs" in raw:
        if not isinstance(raw["outputs"], dict):
            raise ProtocolError('"outputs" must be a JSON object')
        return Result(outputs=raw["outputs"])
    error = raw["error"]
    if isinstance(error, str):
        error = {"message": error}
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        raise ProtocolError('"error" must be an object with a "message" string')
    return Result(error={"type": "Error", **error})


def normalize_level(level: object) -> str | None:
    """Map a level name (any case, WARNING/CRITICAL/FATAL/TRACE accepted) to one of LEVELS."""
    if not isinstance(level, str):
        return None
    return _LEVEL_ALIASES.get(level.strip().upper())


def encode_log_record(level: str, message: str, metadata: Mapping[str, Any] | None = None) -> str:
    """One stderr line (without the newline) carrying a structured log record.

    ``{"kt": "log", "level": "INFO", "message": "...", "metadata": {...}}``. json escapes
    newlines, so a record is always one line; metadata that is not JSON becomes its repr.
    """
    record = {RECORD_KEY: RECORD_LOG, "level": normalize_level(level) or "INFO", "message": str(message)}
    if metadata:
        record["metadata"] = dict(metadata)
    return json.dumps(record, ensure_ascii=False, default=repr)


def decode_log_record(line: str) -> tuple[str, str, dict[str, Any]] | None:
    """``(level, message, metadata)`` when the line is a log record, else None (a plain line)."""
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}") and f'"{RECORD_KEY}"' in text):
        return None
    try:
        raw = loads_untrusted(text)
    except ValueError:
        return None
    if not isinstance(raw, dict) or raw.get(RECORD_KEY) != RECORD_LOG:
        return None
    message, metadata = raw.get("message"), raw.get("metadata") or {}
    level = normalize_level(raw.get("level", "INFO"))
    if not isinstance(message, str) or level is None or not isinstance(metadata, dict):
        return None
    return level, message, metadata
