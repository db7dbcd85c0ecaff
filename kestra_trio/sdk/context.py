"""Plugin-author helpers: declare actions, log, read secrets, fail; ``Plugin.main`` speaks the protocol.

Example::

    from kestra_trio.sdk import Plugin

    plugin = Plugin("greet")

    @plugin.action("hello")
    def hello(ctx, inputs):
        ctx.log.info("greeting", who=inputs["name"])
        return {"text": f"hello {inputs['name']}"}

    if __name__ == "__main__":
        plugin.main()

stdlib only and no trio: this runs inside the plugin process, where start-up time counts.
"""

from __future__ import annotations

import json  # already imported by protocol: free
import os
import re  # already imported by json: free
import sys
TYPE_CHECKING = False  # not `from typing import`: typing costs ~2 ms at every plugin start

from kestra_trio.sdk import protocol

if TYPE_CHECKING:  # typing costs milliseconds at every plugin start
    from collections.abc import Callable, Mapping
    from typing import IO, Any, NoReturn

    ActionFn = Callable[["Context", dict[str, Any]], "Mapping[str, Any] | None"]


class ActionFailed(Exception):
    """raised by ``ctx.fail``: the action failed with a message meant for the user.

    ``type`` and ``stack`` (free text, e.g. a traceback) go into the error result as they are.
    """

    def __init__(self, message: str, exit_code: int = 1, *, type: str = "ActionFailed", stack: str | None = None) -> None:  # noqa: A002
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.type = type
        self.stack = stack


#: the engine cuts stderr lines longer than 64 KiB (docs/plugins.md, "Bounds"); a record line
#: (its JSON, without the newline) is kept at or under this many UTF-8 bytes so it stays valid
#: JSON and keeps its level
MAX_RECORD_BYTES = 60 * 1024
#: when a record is too long, its message keeps at least this many bytes before the metadata
#: is replaced by a note
_MIN_MESSAGE_BYTES = 2 * 1024


def _utf8_size(text: str) -> int:
    # as written by the SDK's stderr handle (lone surrogates become \udcxx escapes)
    return len(text.encode("utf-8", "backslashreplace"))


def _message_size(message: str) -> int:
    """Bytes the message takes inside a record, quotes excluded (json escapes included)."""
    return _utf8_size(json.dumps(message, ensure_ascii=False)) - 2


#: the end of a message `bounded_log_record` cut (the engine masks a secret's start before it)
CUT_RECORD = re.compile(r"\.\.\. \[truncated \d+ bytes\]\Z")


def bounded_log_record(
    level: str, message: str, metadata: Mapping[str, Any] | None = None, limit: int = MAX_RECORD_BYTES
) -> str:
    """:func:`protocol.encode_log_record`, kept within ``limit`` bytes (UTF-8, no newline).

    A record that is too long loses the end of its message, replaced by ``... [truncated N
    bytes]`` (N: UTF-8 bytes dropped). When the metadata leaves the message less than 2 KiB,
    the metadata is first replaced by ``{"truncated_metadata": true, "bytes": N}`` (N: its
    JSON size). The level is always kept, and the line is always valid JSON.
    """
    message = str(message)
    if len(message) <= limit:  # longer in characters is longer in bytes: do not encode it whole
        line = protocol.encode_log_record(level, message, metadata)
        if _utf8_size(line) <= limit:
            return line
    # from here on the message does not fit next to the metadata
    total = len(message.encode("utf-8", "surrogatepass"))
    marker_room = len(f"... [truncated {total} bytes]")
    room = limit - _utf8_size(protocol.encode_log_record(level, "", metadata))
    if metadata and room < _MIN_MESSAGE_BYTES + marker_room:
        size = _utf8_size(json.dumps(dict(metadata), ensure_ascii=False, default=repr))
        metadata = {"truncated_metadata": True, "bytes": size}
        room = limit - _utf8_size(protocol.encode_log_record(level, "", metadata))
        if len(message) <= room and _message_size(message) <= room:
            return protocol.encode_log_record(level, message, metadata)
    # the longest prefix (in characters) whose escaped size fits next to the marker
    budget = room - marker_room
    lo, hi = 0, max(min(len(message), budget), 0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _message_size(message[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    kept = message[:lo]
    dropped = total - len(kept.encode("utf-8", "surrogatepass"))
    return protocol.encode_log_record(level, f"{kept}... [truncated {dropped} bytes]", metadata)


class Logger:
    """Writes structured log records, one JSON line each, on stderr (never stdout).

    Each record stays within MAX_RECORD_BYTES (see :func:`bounded_log_record`). Metadata
    may use any key, including ``level``, ``message`` and ``msg``: the level and message
    are positional. ``stream`` is where records go (``Plugin.main`` passes its own handle
    on the stderr pipe, so user code may close or replace ``sys.stderr``); None means
    ``sys.stderr`` at each call. A record that cannot be written is dropped: logging never
    fails the action.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream

    def log(self, level: str, message: str, /, **metadata: Any) -> None:
        line = bounded_log_record(level, message, metadata) + "\n"
        stream = self._stream
        if stream is None:
            stream = sys.stderr
        else:  # our own handle: let what the user wrote to sys.stderr come first
            _flush_quietly(sys.stderr)
        try:
            stream.write(line)
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed, broken pipe, or sys.stderr is None
            pass

    def debug(self, message: str, /, **metadata: Any) -> None:
        self.log("DEBUG", message, **metadata)

    def info(self, message: str, /, **metadata: Any) -> None:
        self.log("INFO", message, **metadata)

    def warn(self, message: str, /, **metadata: Any) -> None:
        self.log("WARN", message, **metadata)

    warning = warn

    def error(self, message: str, /, **metadata: Any) -> None:
        self.log("ERROR", message, **metadata)


def _flush_quietly(stream: object) -> None:
    """Flush a stream user code may have closed, replaced (by anything) or set to None."""
    try:
        stream.flush()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001, S110 - the user's stream, not ours
        pass


def _write_quietly(stream: IO[str] | None, text: str) -> None:
    try:
        target = sys.stderr if stream is None else stream
        target.write(text)
        target.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _own_stderr() -> IO[str] | None:
    """A text handle on a duplicate of fd 2, which user code closing sys.stderr (or fd 2) leaves open."""
    try:
        fd = os.dup(2)  # not inheritable: the action's subprocesses do not get it
    except OSError:
        return None
    return open(fd, "w", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115 - closed by main


def system_exit_failure(exc: SystemExit, subject: str = "the action") -> ActionFailed | None:
    """None when ``sys.exit(0)``/``sys.exit()``/``sys.exit(None)`` (a success), else the failure it means.

    ``subject`` names what exited (``the script``). An integer code is kept as the exit
    code when it is one (1..255); another value (a message) exits 1, like Python does.
    """
    code = exc.code
    if code is None or (isinstance(code, int) and code == 0):
        return None
    import traceback

    stack = traceback.format_exc()
    if isinstance(code, int):
        exit_code = code if 1 <= code <= 255 else 1
        return ActionFailed(f"{subject} exited with code {code} (sys.exit)", exit_code, type="SystemExit", stack=stack)
    return ActionFailed(f"{subject} exited: {code}", 1, type="SystemExit", stack=stack)


def user_traceback(exc: BaseException) -> str:
    """The traceback without the frames of the plugin machinery (those that set
    ``__tracebackhide__``, as pytest does), so it starts at the author's code."""
    import traceback

    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_locals.get("__tracebackhide__"):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


class Secrets:
    """Read-only view of the secrets the workflow granted this task."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The secret's value, or ``default`` (None) when it is not configured."""
        return self._values.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __repr__(self) -> str:  # never show values
        return f"Secrets({sorted(self._values)})"


class Context:
    """What an action receives besides its inputs."""

    def __init__(self, message: protocol.InputMessage, log: Logger | None = None) -> None:
        self.action = message.action
        self.inputs = message.inputs
        self.execution_id = message.execution_id
        self.task_id = message.task_id
        self.attempt = message.attempt
        self.secrets = Secrets(message.secrets)
        self.log = log or Logger()

    def fail(self, message: str, exit_code: int = 1) -> NoReturn:
        """Stop the action: the task fails with ``message`` (the process exits ``exit_code``)."""
        raise ActionFailed(message, exit_code)


class Plugin:
    """A set of named actions and the ``main()`` that dispatches one of them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.actions: dict[str, ActionFn] = {}

    def action(self, name: str) -> Callable[[ActionFn], ActionFn]:
        """Decorator: register ``fn(ctx, inputs) -> dict`` as the action ``name``."""

        def register(fn: ActionFn) -> ActionFn:
            self.actions[name] = fn
            return fn

        return register

    def run(self, message: protocol.InputMessage, log_stream: IO[str] | None = None) -> tuple[bytes, int]:
        """Run one action and return ``(result bytes, exit code)``; never raises.

        ``log_stream`` is where ``ctx.log`` writes (None: ``sys.stderr`` at each record).
        ``sys.exit()`` in the action is a success with no outputs, ``sys.exit(N)`` or
        ``sys.exit("message")`` an error result, like an exception.
        """
        __tracebackhide__ = True  # noqa: F841 - read by user_traceback
        try:
            fn = self.actions.get(message.action)
            if fn is None:
                known = ", ".join(sorted(self.actions)) or "none"
                raise ActionFailed(f"plugin {self.name} has no action {message.action!r} (actions: {known})")
            try:
                outputs = fn(Context(message, Logger(log_stream)), message.inputs)
            except SystemExit as exc:
                failure = system_exit_failure(exc, f"action {message.action!r}")
                if failure is not None:
                    raise failure from None
                outputs = None
            if outputs is None:
                outputs = {}
            if not isinstance(outputs, dict):
                raise ActionFailed(f"action {message.action!r} returned {type(outputs).__name__}, not a dict")
            try:
                result = protocol.encode_outputs(outputs)
            except (TypeError, ValueError) as exc:
                raise ActionFailed(f"outputs are not JSON data: {exc}") from None
            if len(result) > protocol.MAX_RESULT_BYTES:
                raise ActionFailed(
                    f"the outputs are {len(result)} bytes once encoded as JSON, more than the engine accepts "
                    f"in a result ({protocol.MAX_RESULT_BYTES} bytes): write large data to a file and return its path"
                )
            return result, 0
        except ActionFailed as exc:
            return protocol.encode_error(exc.message, exc.type, exc.stack), exc.exit_code
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - reported to the engine, with the traceback
            # the message reads like a traceback's last line ("KeyError: 'missing'"): str() alone
            # of many exceptions says nothing of what went wrong
            text = str(exc)
            message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            return protocol.encode_error(message, type(exc).__name__, user_traceback(exc)), 1

    def main(self, stdin: IO[bytes] | None = None, environ: Mapping[str, str] | None = None) -> NoReturn:
        """Speak the protocol: read stdin, dispatch, write the result file, exit.

        Records and messages go through a handle on the stderr pipe taken at start, and the
        result file's path is made absolute at start, so the action may close or replace
        ``sys.stdout``/``sys.stderr`` or change directory.
        """
        env = os.environ if environ is None else environ
        path = env.get(protocol.RESULT_FILE_ENV)
        if path:
            path = os.path.abspath(path)
        stderr = _own_stderr()
        try:
            try:
                message = protocol.decode_input((stdin or sys.stdin.buffer).read())
            except protocol.ProtocolError as exc:
                result, code = protocol.encode_error(str(exc), "ProtocolError"), 2
            else:
                result, code = self.run(message, log_stream=stderr)
            _flush_quietly(sys.stdout)
            _flush_quietly(sys.stderr)
            if path:
                try:
                    with open(path, "wb") as fh:
                        fh.write(result)
                except OSError as exc:
                    _write_quietly(stderr, f"ERROR cannot write the result file {path}: {exc}\n")
                    code = code or 1
            else:  # run by hand: show the result instead of losing it
                _write_quietly(stderr, f"{protocol.RESULT_FILE_ENV} is not set; result: {result.decode()}\n")
        finally:
            if stderr is not None:
                try:
                    stderr.close()
                except (OSError, ValueError):
                    pass
        raise SystemExit(code)
