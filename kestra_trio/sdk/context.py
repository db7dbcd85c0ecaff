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

import os
import sys
TYPE_CHECKING = False  # not `from typing import`: typing costs ~2 ms at every plugin start

from kestra_trio.sdk import protocol

if TYPE_CHECKING:  # typing costs milliseconds at every plugin start
    from collections.abc import Callable, Mapping
    from typing import IO, Any, NoReturn

    ActionFn = Callable[["Context", dict[str, Any]], "Mapping[str, Any] | None"]


class ActionFailed(Exception):
    """raised by ``ctx.fail``: the action failed with a message meant for the user."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class Logger:
    """Writes structured log records, one JSON line each, on stderr (never stdout)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream

    def log(self, level: str, message: str, **metadata: Any) -> None:
        stream = self._stream or sys.stderr
        stream.write(protocol.encode_log_record(level, message, metadata) + "\n")
        stream.flush()

    def debug(self, message: str, **metadata: Any) -> None:
        self.log("DEBUG", message, **metadata)

    def info(self, message: str, **metadata: Any) -> None:
        self.log("INFO", message, **metadata)

    def warn(self, message: str, **metadata: Any) -> None:
        self.log("WARN", message, **metadata)

    warning = warn

    def error(self, message: str, **metadata: Any) -> None:
        self.log("ERROR", message, **metadata)


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

    def run(self, message: protocol.InputMessage) -> tuple[bytes, int]:
        """Run one action and return ``(result bytes, exit code)``; never raises."""
        try:
            fn = self.actions.get(message.action)
            if fn is None:
                known = ", ".join(sorted(self.actions)) or "none"
                raise ActionFailed(f"plugin {self.name} has no action {message.action!r} (actions: {known})")
            outputs = fn(Context(message), message.inputs)
            if outputs is None:
                outputs = {}
            if not isinstance(outputs, dict):
                raise ActionFailed(f"action {message.action!r} returned {type(outputs).__name__}, not a dict")
            try:
                return protocol.encode_outputs(outputs), 0
            except (TypeError, ValueError) as exc:
                raise ActionFailed(f"outputs are not JSON data: {exc}") from None
        except ActionFailed as exc:
            return protocol.encode_error(exc.message, "ActionFailed"), exc.exit_code
        except Exception as exc:  # noqa: BLE001 - reported to the engine, with the traceback
            import traceback

            stack = traceback.format_exc()
            return protocol.encode_error(str(exc) or type(exc).__name__, type(exc).__name__, stack), 1

    def main(self, stdin: IO[bytes] | None = None, environ: Mapping[str, str] | None = None) -> NoReturn:
        """Speak the protocol: read stdin, dispatch, write the result file, exit."""
        env = os.environ if environ is None else environ
        path = env.get(protocol.RESULT_FILE_ENV)
        try:
            message = protocol.decode_input((stdin or sys.stdin.buffer).read())
        except protocol.ProtocolError as exc:
            result, code = protocol.encode_error(str(exc), "ProtocolError"), 2
        else:
            result, code = self.run(message)
        sys.stdout.flush()
        if path:
            with open(path, "wb") as fh:
                fh.write(result)
        else:  # run by hand: show the result instead of losing it
            sys.stderr.write(f"{protocol.RESULT_FILE_ENV} is not set; result: {result.decode()}\n")
        sys.stderr.flush()
        raise SystemExit(code)
