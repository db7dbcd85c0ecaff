"""Trusted mode: run a plugin action as a child process in its own process group.

Shape (trio's ``run_process``, adapted): spawn *outside* the nursery so a start failure is a
plain ``Outcome``; inside it, pump stdout and stderr line by line into ``log_send`` while
waiting for the leader. Cancelled → SIGTERM the group, ``kill_grace``, SIGKILL; after the
leader exits the group gets one more SIGKILL for grandchildren. The pumps run under a shield
so every line written before the end reaches ``log_send`` — reads are bounded by a short
drain deadline (a setsid'd grandchild may hold a pipe open forever); sends wait as long as
the consumer needs (the engine's collector holds them back while the database refuses
writes, and stops holding them back once the run is stopping), so no line is dropped here.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import json
import math
import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from kestra_trio.config import DEFAULT_KILL_GRACE, SECRET_ENV_PREFIX
from kestra_trio.model.durations import format_duration
from kestra_trio.observability.records import LogEntry, LogLevel
from kestra_trio.plugin_runtime.directives import MAX_DIRECTIVE_BYTES, Malformed, Reported, is_candidate, parse_directive
from kestra_trio.plugin_runtime.manifest import BUILTIN_TYPES, ActionSpec
from kestra_trio.plugin_runtime.reaper import GroupReaper
from kestra_trio.plugin_runtime.runtime import Invocation, Outcome, ProcessHandle
from kestra_trio.plugin_runtime.streams import (
    DEFAULT_OUTPUT_LIMIT,
    MAX_LINE_BYTES,
    READ_SIZE,
    LineSplitter,
    OutputBudget,
    Stream,
    classify,
    pump_lines,
)
from kestra_trio.sdk import protocol
from kestra_trio.sdk.context import CUT_RECORD
from kestra_trio.secrets.masking import Masker
from kestra_trio.state.states import Reason

#: how long to keep reading pipes after the group is dead (a setsid'd grandchild may hold one)
DRAIN_READ_DEADLINE = 2.0
STDERR_TAIL_LINES = 20
#: how long to wait for SIGKILLed group members to be gone before returning
GROUP_EXIT_WAIT = 1.0
_SDK_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding the kestra_trio package
_CORE_KEYS = ("plugin", "action", "stream", "attempt")


# ---------------------------------------------------------------- schemas


def _json_path(root: str, parts: Any) -> str:
    return root + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def schema_problems(action: ActionSpec, kind: str, data: Any) -> list[str]:
    """Every mismatch between ``data`` and the action's ``input``/``output`` schema."""
    schema = action.input_schema if kind == "input" else action.output_schema
    if not schema:
        return []
    validator = action.validators.get(kind)
    if validator is None:
        from jsonschema import validators  # deferred: heavy import, first task pays it once

        validator = validators.validator_for(schema)(schema)
        action.validators[kind] = validator
    root = "inputs" if kind == "input" else "outputs"
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{_json_path(root, e.absolute_path)}: {e.message}" for e in errors[:10]]


# ---------------------------------------------------------------- planning the child


@dataclass(slots=True)
class _Plan:
    argv: list[str]
    env: dict[str, str]
    cwd: Path | None
    stdin: bytes | None  # None: /dev/null
    result_path: Path | None  # None: builtin, the exit code is the result
    pass_fds: tuple[int, ...] = ()  # descriptors the child keeps (a sandbox's control pipes)


def _base_env(invocation: Invocation, inherited: Mapping[str, str] | None) -> dict[str, str]:
    # secrets reach a task only through its inputs (`{{ secrets.NAME }}`) and the protocol's
    # `secrets`: inherited, `env` or a crash dump would print them where no mask applies
    source = os.environ if inherited is None else inherited
    env = {key: value for key, value in source.items() if not key.startswith(SECRET_ENV_PREFIX)}
    env[protocol.EXECUTION_ID_ENV] = invocation.execution_id
    env[protocol.TASK_ID_ENV] = invocation.task_id
    env[protocol.ATTEMPT_ENV] = str(invocation.attempt)
    env[protocol.PLUGIN_DIR_ENV] = str(invocation.manifest.folder)
    return env


def _builtin_shell_plan(invocation: Invocation, inherited: Mapping[str, str] | None) -> _Plan:
    """core/shell.run without a Python start: the engine execs ``sh -c`` itself."""
    inputs = invocation.inputs
    command = inputs.get("command")
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else [str(a) for a in inputs["argv"]]
    env = _base_env(invocation, inherited)
    # numbers and booleans as JSON writes them: `true`, not Python's `True`
    env.update({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (inputs.get("env") or {}).items()})
    cwd = invocation.workdir
    if inputs.get("cwd"):
        cwd = (cwd or Path.cwd()) / str(inputs["cwd"])
    return _Plan(argv, env, cwd, None, None)


def _has_command(inputs: dict[str, Any]) -> bool:
    argv = inputs.get("argv")
    return isinstance(inputs.get("command"), str) or (isinstance(argv, list) and bool(argv))


def _process_plan(invocation: Invocation, result_dir: Path | None, inherited: Mapping[str, str] | None) -> _Plan:
    argv = list(invocation.manifest.argv)
    env = _base_env(invocation, inherited)
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the pipe as printed, even if killed
    if argv and argv[0] == sys.executable:  # so `-S` plugins still import kestra_trio.sdk
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_SDK_ROOT, env.get("PYTHONPATH")]))
    fd, name = tempfile.mkstemp(prefix="kt-result-", suffix=".json", dir=result_dir)
    os.close(fd)
    env[protocol.RESULT_FILE_ENV] = name
    message = protocol.InputMessage(
        action=invocation.action.name,
        inputs=invocation.inputs,
        execution_id=invocation.execution_id,
        task_id=invocation.task_id,
        attempt=invocation.attempt,
        secrets=dict(invocation.secrets),
    )
    return _Plan(argv, env, invocation.workdir, protocol.encode_input(message), Path(name))


def is_builtin(invocation: Invocation) -> bool:
    """True when the engine runs this action itself (`runtime: builtin`, a known type)."""
    return invocation.manifest.runtime == "builtin" and invocation.task_type in BUILTIN_TYPES


def _unspawnable(plan: _Plan) -> str | None:
    """What the OS would refuse in argv / env / cwd (a NUL byte, a bad variable name), said
    plainly. Values can come from templates, so from another task's outputs."""
    for index, arg in enumerate(plan.argv):
        if "\0" in arg:
            return f"argument {index} contains a NUL byte (\\0), which a command line cannot carry"
    for key, value in plan.env.items():
        if not key or "=" in key or "\0" in key:
            return f"environment variable name {key!r} is not valid (empty, or contains '=' or a NUL byte)"
        if "\0" in value:
            return f"environment variable {key} contains a NUL byte (\\0), which the environment cannot carry"
    if plan.cwd is not None and "\0" in str(plan.cwd):
        return "the working directory contains a NUL byte (\\0)"
    if plan.cwd is not None and not Path(plan.cwd).is_dir():  # else the OS blames the program
        what = "is not a directory" if Path(plan.cwd).exists() else "does not exist"
        return f"the working directory {plan.cwd} {what}"
    return None


async def _spawn(plan: _Plan) -> trio.Process:
    return await trio.lowlevel.open_process(
        plan.argv,
        pass_fds=plan.pass_fds,
        stdin=subprocess.PIPE if plan.stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        cwd=plan.cwd,
        env=plan.env,
    )


# ---------------------------------------------------------------- log delivery


#: entries per channel item; the collector's channel holds a bounded number of items
SEND_CHUNK = 256


class LogEmitter:
    """Turns lines from both pipes into LogEntries, under the per-task output budget.

    A stdout line `::{"outputs": ...}::` / `::{"metrics": ...}::` is not a log line: it goes
    to `reported` (see `directives`), whatever the budget; one that cannot be read is logged
    as written, followed by a WARN saying why."""

    def __init__(self, invocation: Invocation, log_send: trio.MemorySendChannel[LogEntry], limit: int) -> None:
        self._inv = invocation
        self._send = log_send
        self._source = f"plugin:{invocation.task_type}"
        self._core = {
            "plugin": invocation.manifest.full_name,
            "action": invocation.action.name,
            "attempt": invocation.attempt,
        }
        # one shared metadata dict per stream: no per-line dict, and storage encodes it once per batch
        self._plain_meta = {name: {**self._core, "stream": name} for name in ("stdout", "stderr")}
        self.budget = OutputBudget(limit)
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.reported = Reported()
        self._masker = invocation.masker

    def mask_cut(self, text: str) -> str:
        """Text whose end was cut off, masked here: the collector never sees the dropped part,
        so it could not tell a secret's first characters at the cut from any other text."""
        if self._masker is None:
            self._masker = Masker(self._inv.secrets.values())
        return self._masker.mask_cut(text)

    def entry(self, stream: Stream, line: str) -> LogEntry:
        level, message, extra = classify(line, stream)
        if extra and (cut := CUT_RECORD.search(message)) is not None:  # the plugin's SDK cut it
            message = self.mask_cut(message[: cut.start()]) + cut.group()
        if stream == "stderr":
            self.stderr_tail.append(message)
        metadata = {**extra, **self._core, "stream": stream} if extra else self._plain_meta[stream]
        return LogEntry(self._inv.execution_id, self._inv.task_id, level, self._source, message, metadata)

    async def lines(self, stream: Stream, lines: list[str]) -> None:
        """One channel send per chunk of lines (not per line): a chunk read is 64 KiB at most."""
        batch: list[LogEntry] = []
        for line in lines:
            if stream == "stdout" and is_candidate(line):
                warning = self._directive(line)
                if warning is None:
                    continue
                line = line if len(line) <= MAX_LINE_BYTES else self.mask_cut(line[:MAX_LINE_BYTES]) + " …[line truncated]"
                if self.budget.admit(stream, line):
                    batch.append(self.entry(stream, line))
                batch.append(warning)
                continue
            if self.budget.admit(stream, line):
                batch.append(self.entry(stream, line))
                if len(batch) >= SEND_CHUNK:
                    await self._send.send(batch)
                    batch = []
            elif stream == "stderr":
                self.stderr_tail.append(line)
        if batch:
            await self._send.send(batch)

    def _directive(self, line: str) -> LogEntry | None:
        """Take an outputs/metrics line in; None when it was one, else the WARN to log after it."""
        parsed = parse_directive(line)
        if not isinstance(parsed, Malformed):
            before = self.reported.dropped_metrics
            self.reported.add(parsed)
            if self.reported.dropped_metrics and not before:
                return self._warning(f"more than {len(self.reported.metrics):,} metrics: the rest of this attempt's are not stored")
            return None
        self.reported.refuse(parsed)
        return self._warning(
            f'this stdout line starts like an outputs/metrics line (::{{"outputs": ...}}::) but is not one: '
            f"{parsed.reason}; it is kept as a log line"
        )

    def _warning(self, message: str) -> LogEntry:
        meta = {**self._core, "stream": "engine"}
        return LogEntry(self._inv.execution_id, self._inv.task_id, LogLevel.WARN, self._source, message, meta)

    async def note(self, level: LogLevel, message: str, **metadata: Any) -> None:
        meta = {**self._core, "stream": "engine", **metadata}
        await self._send.send(LogEntry(self._inv.execution_id, self._inv.task_id, level, self._source, message, meta))

    async def finish(self) -> None:
        """Emit the truncation notice and the kept tail, if the budget was exceeded."""
        report = self.budget.finish()
        if report is None:
            return
        await self.note(
            LogLevel.WARN,
            report.message(),
            truncated=True,
            dropped_bytes=report.dropped_bytes,
            dropped_lines=report.dropped_lines,
        )
        tail = [self.entry(stream, line) for stream, line in report.tail]
        for start in range(0, len(tail), SEND_CHUNK):
            await self._send.send(tail[start : start + SEND_CHUNK])


class _Drain:
    """Read side of both pumps, with a deadline that can be set while reads are waiting."""

    def __init__(self) -> None:
        self.read_deadline = math.inf
        self.timed_out: list[str] = []
        self._active: set[trio.CancelScope] = set()

    def stop_reading_at(self, deadline: float) -> None:
        self.read_deadline = min(self.read_deadline, deadline)
        for scope in self._active:
            scope.deadline = self.read_deadline

    def reader(self, stream: trio.abc.ReceiveStream, name: str) -> Any:
        late_reads = 0

        async def receive_some(size: int) -> bytes:
            nonlocal late_reads
            with trio.CancelScope(deadline=self.read_deadline) as scope:
                self._active.add(scope)
                try:
                    return await stream.receive_some(size)
                finally:
                    self._active.discard(scope)
            # The deadline passed. On a starved machine the reader may simply be late: what
            # is already in the pipe (or its EOF) is read without waiting before anyone is
            # blamed for holding the pipe open. Bounded, in case a writer never stops.
            data = _read_ready(stream, size) if late_reads < LATE_READ_LIMIT else None
            late_reads += 1
            if data is None:
                self.timed_out.append(name)
                return b""
            return data

        return receive_some


#: chunks still read after the drain deadline, without waiting (64 KiB each)
LATE_READ_LIMIT = 256


def _read_ready(stream: trio.abc.ReceiveStream, size: int) -> bytes | None:
    """Bytes already waiting in the pipe, b"" at EOF, None if reading would block."""
    fileno = getattr(stream, "fileno", None)
    if fileno is None:
        return None
    try:
        return os.read(fileno(), size)
    except BlockingIOError:
        return None
    except OSError:
        return b""


# ---------------------------------------------------------------- killing


def _signal_group(handle: ProcessHandle, sig: int) -> bool:
    """Signal the whole group (0: only check it exists); False when no process of it is left.

    SIGTERM spares ``handle.spare`` (a sandbox's own supervisors, which would kill the plugin
    at once instead of letting it use its grace period)."""
    if sig == signal.SIGTERM and handle.spare:
        return _signal_members(handle.pgid, sig, handle.spare)
    try:
        os.killpg(handle.pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of group ``pgid``, from /proc (Linux; elsewhere none)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    members = []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(name))
    return members


def _signal_members(pgid: int, sig: int, spare: tuple[int, ...]) -> bool:
    found = False
    for pid in _group_members(pgid):
        if pid in spare:
            found = True
            continue
        try:
            os.kill(pid, sig)
            found = True
        except (ProcessLookupError, PermissionError):
            pass
    return found


def _group_running(pgid: int) -> bool:
    """True while a process of group ``pgid`` is not yet dead (zombies count as dead).

    Reads /proc (Linux); elsewhere it answers False and the final SIGKILL has to do.
    """
    return bool(_group_members(pgid))


async def _wait_group_gone(pgid: int, timeout: float = GROUP_EXIT_WAIT) -> None:
    """After SIGKILL, wait (bounded) until the kernel has really ended every member, so
    "no process outlives its task" holds when run_action returns. Only runs when the final
    SIGKILL found survivors (background jobs), so the common path pays nothing."""
    with trio.move_on_after(timeout):
        while _group_running(pgid):
            await trio.sleep(0.005)


async def _terminate(
    process: trio.Process, handle: ProcessHandle, kill_grace: float, force_kill: trio.Event | None = None
) -> None:
    """SIGTERM the group, wait ``kill_grace`` (or until ``force_kill`` is set), then SIGKILL
    it (call shielded)."""
    handle.killed_by_us = True
    if process.returncode is None:
        handle.signal_sent = "SIGTERM"
        _signal_group(handle, signal.SIGTERM)
        with trio.move_on_after(kill_grace):
            if force_kill is None:
                await process.wait()
            else:
                await _wait_exit_or_event(process, force_kill)
    if process.returncode is None:
        handle.signal_sent = "SIGKILL"
        handle.escalation = (
            "a second stop signal" if force_kill is not None and force_kill.is_set()
            else f"the {format_duration(kill_grace)} grace period ran out"
        )
        _signal_group(handle, signal.SIGKILL)
        await process.wait()


async def _wait_exit_or_event(process: trio.Process, event: trio.Event) -> None:
    async with trio.open_nursery() as nursery:
        async def on_event() -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(on_event)
        await process.wait()
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------- the outcome


def _read_result(path: Path) -> protocol.Result | str:
    """The decoded result, or a message saying why there is none (small file, read once).

    Never follows a symlink: a sandboxed plugin owns the folder the file is in, and must not
    make the engine read a file it cannot see itself."""
    try:
        with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                return "the result file is not a regular file"
            if info.st_size > protocol.MAX_RESULT_BYTES:
                return f"the result file is larger than {protocol.MAX_RESULT_BYTES} bytes"
            data = fh.read()
    except OSError as exc:
        return f"the result file cannot be read: {exc.strerror or exc}"
    try:
        return protocol.decode_result(data)
    except protocol.ProtocolError as exc:
        return str(exc)


def outcome_of(
    invocation: Invocation, plan: _Plan, handle: ProcessHandle, stderr_tail: list[str], reported: Reported | None = None
) -> Outcome:
    """How an attempt ended. `reported`: what its stdout lines said (`::{"outputs": ...}::`):
    those outputs are merged under the result's (the result file, or the exit code of a
    builtin, wins key by key), and its metrics travel with the outcome either way."""
    outcome = _outcome(invocation, plan, handle, stderr_tail, reported)
    if reported is not None and reported.metrics:
        outcome = dataclasses.replace(outcome, metrics=tuple(reported.metrics))
    return outcome


def _outcome(
    invocation: Invocation, plan: _Plan, handle: ProcessHandle, stderr_tail: list[str], reported: Reported | None
) -> Outcome:
    code = handle.exit_code
    assert code is not None
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        return Outcome.failure(
            Reason.PLUGIN_CRASHED,
            f"plugin was killed by {name}",
            type="PluginCrashed",
            exit_code=code,
            signal=name,
            stderr_tail=stderr_tail,
        )
    if plan.result_path is None:  # builtin: the exit code is the result
        if code != 0:
            return Outcome.failure(
                Reason.PLUGIN_FAILED,
                f"command exited with code {code}",
                type="CommandFailed",
                exit_code=code,
                stderr_tail=stderr_tail,
            )
        result: protocol.Result | str = protocol.Result(outputs={"exit_code": 0})
    else:
        result = _read_result(plan.result_path)
    if isinstance(result, protocol.Result) and result.error is not None:
        error = result.error
        extra = {"stack": error["stack"]} if isinstance(error.get("stack"), str) else {}
        return Outcome.failure(
            Reason.PLUGIN_FAILED,
            error["message"],
            type=str(error.get("type") or "Error"),
            exit_code=code,
            stderr_tail=stderr_tail,
            **extra,
        )
    if code != 0:
        return Outcome.failure(
            Reason.PLUGIN_FAILED,
            f"plugin exited with code {code}",
            type="PluginFailed",
            exit_code=code,
            stderr_tail=stderr_tail,
        )
    if reported is not None and reported.problem is not None:
        return Outcome.failure(Reason.INVALID_RESULT, reported.problem, type="InvalidResult", exit_code=code)
    if isinstance(result, str):
        if reported is None or not reported.any_outputs:
            return Outcome.failure(
                Reason.INVALID_RESULT,
                f"plugin exited with code 0 but gave no valid result: {result}",
                type="InvalidResult",
                exit_code=code,
                stderr_tail=stderr_tail,
            )
        result = protocol.Result(outputs={})  # no result file: the stdout lines are the outputs
    outputs = {**reported.outputs, **(result.outputs or {})} if reported is not None else (result.outputs or {})
    problems = schema_problems(invocation.action, "output", outputs)
    if problems:
        return Outcome.failure(
            Reason.INVALID_RESULT,
            f"outputs do not match the output schema of {invocation.task_type}: " + "; ".join(problems),
            type="InvalidResult",
            exit_code=code,
            stderr_tail=stderr_tail,
        )
    return Outcome.success(outputs, exit_code=code)


# ---------------------------------------------------------------- the entry point


async def run_action(
    invocation: Invocation,
    *,
    log_send: trio.MemorySendChannel[LogEntry],
    reaper: GroupReaper | None = None,
    kill_grace: float = DEFAULT_KILL_GRACE,
    force_kill: trio.Event | None = None,
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
    task_status: trio.TaskStatus[ProcessHandle] = trio.TASK_STATUS_IGNORED,
) -> Outcome:
    """Run one attempt of ``invocation`` as a child process and return how it ended.

    Args:
      log_send: every line the plugin writes becomes a LogEntry sent here (backpressure ok).
      reaper: when given, the process group is registered with the engine's watchdog.
      kill_grace: seconds between SIGTERM and SIGKILL when cancelled.
      force_kill: once set, a group being stopped gets SIGKILL without waiting the grace.
      output_limit: bytes of log lines stored per attempt before only the tail is kept.
      task_status: receives the ProcessHandle right after spawn (``nursery.start``).

    Returns:
      an Outcome; start failures, bad inputs and plugin failures never raise.

    Raises:
      trio.Cancelled: when the caller's scope was cancelled, after the group is dead and
        every line it wrote has been sent.
    """
    plan = make_plan(invocation)
    if isinstance(plan, Outcome):
        return plan
    try:
        return await run_plan(
            invocation, plan, log_send=log_send, reaper=reaper, kill_grace=kill_grace, force_kill=force_kill,
            output_limit=output_limit, task_status=task_status,
        )
    finally:
        if plan.result_path is not None:
            try:
                plan.result_path.unlink()
            except OSError:
                pass


def make_plan(
    invocation: Invocation, result_dir: Path | None = None, inherited: Mapping[str, str] | None = None
) -> _Plan | Outcome:
    """The child to start (argv, env, stdin, result file), or why the inputs cannot start one.

    ``inherited``: the environment the child starts from (default: the engine's, less secrets);
    ``result_dir``: where the result file is created (default: the system's temp folder)."""
    problems = schema_problems(invocation.action, "input", invocation.inputs)
    if problems:
        return Outcome.failure(
            Reason.INVALID_INPUT,
            f"inputs do not match the input schema of {invocation.task_type}: " + "; ".join(problems),
            type="InvalidInput",
        )
    builtin = is_builtin(invocation)
    if builtin and not _has_command(invocation.inputs):
        return Outcome.failure(
            Reason.INVALID_INPUT,
            f"{invocation.task_type} needs `command` (a string) or `argv` (a non-empty list)",
            type="InvalidInput",
        )
    return _builtin_shell_plan(invocation, inherited) if builtin else _process_plan(invocation, result_dir, inherited)


class Confinement:
    """What a sandbox adds around one child process (the trusted runtime uses none).

    ``started`` runs right after spawn, before the plugin's own code (bubblewrap waits on a
    pipe for it); ``watch`` runs while the child runs and may kill it; ``judge`` may replace
    the outcome (a limit that was hit is the reason, not the exit code)."""

    #: True when the sandbox itself ends every process it holds (a pid namespace): the
    #: group's last members are then its teardown, not background jobs worth a warning
    reaps_leftovers = False

    async def started(self, process: trio.Process, handle: ProcessHandle) -> str | None:
        """None when the sandbox is ready, else why it could not be set up."""
        return None

    async def watch(self, kill: Any) -> None:
        await trio.sleep_forever()

    def judge(self, outcome: Outcome, handle: ProcessHandle) -> Outcome:
        return outcome


async def run_plan(
    invocation: Invocation,
    plan: _Plan,
    *,
    log_send: trio.MemorySendChannel[LogEntry],
    reaper: GroupReaper | None,
    kill_grace: float,
    force_kill: trio.Event | None,
    output_limit: int,
    task_status: trio.TaskStatus[ProcessHandle],
    confinement: Confinement | None = None,
) -> Outcome:
    """Start ``plan`` and supervise it to its end (see :func:`run_action`)."""
    problem = _unspawnable(plan)
    if problem:
        return Outcome.failure(Reason.INVALID_INPUT, f"cannot start {invocation.task_type}: {problem}", type="InvalidInput")
    try:
        process = await _spawn(plan)
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.E2BIG:  # a value from the inputs, not the plugin
            return Outcome.failure(
                Reason.INVALID_INPUT,
                f"cannot start {invocation.task_type}: an argument or environment variable is too large for the "
                "operating system (Linux allows 128 KiB for each, 2 MiB in all): pass large data through a file",
                type="InvalidInput",
            )
        program = plan.argv[0] if plan.argv else "plugin"
        detail = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        filename = getattr(exc, "filename", None)
        if filename and str(filename) != program:  # e.g. the working directory
            detail += f": {filename}"
        elif isinstance(exc, FileNotFoundError) and Path(program).is_file():
            detail += " (the file exists: is the interpreter on its #! line missing?)"
        return Outcome.failure(
            Reason.PLUGIN_NOT_STARTED, f"cannot start {program}: {detail}", type=type(exc).__name__
        )
    handle = ProcessHandle(pid=process.pid, pgid=process.pid)
    emitter = LogEmitter(invocation, log_send, output_limit)
    handle.stderr_tail = emitter.stderr_tail
    interrupted: BaseException | None = None
    try:
        if reaper is not None:
            await reaper.register(handle.pgid)
        problem = await confinement.started(process, handle) if confinement is not None else None
        if problem is not None:
            _signal_group(handle, signal.SIGKILL)
            handle.exit_code = await process.wait()
            return Outcome.failure(Reason.SANDBOX_FAILED, problem, type="SandboxFailed")
        task_status.started(handle)
        interrupted = await _supervise(process, plan, handle, emitter, kill_grace, force_kill, confinement)
    finally:
        with trio.CancelScope(shield=True):
            if handle.exit_code is None:  # only if something above failed before supervising
                _signal_group(handle, signal.SIGKILL)
                handle.exit_code = await process.wait()
            if reaper is not None:
                await reaper.unregister(handle.pgid)
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    await pipe.aclose()
    if isinstance(interrupted, trio.Cancelled):
        await trio.lowlevel.checkpoint()  # the caller's scope is cancelled: a fresh Cancelled
    if interrupted is not None:
        raise interrupted
    outcome = outcome_of(invocation, plan, handle, list(emitter.stderr_tail), emitter.reported)
    return confinement.judge(outcome, handle) if confinement is not None else outcome


async def _supervise(
    process: trio.Process,
    plan: _Plan,
    handle: ProcessHandle,
    emitter: LogEmitter,
    kill_grace: float,
    force_kill: trio.Event | None = None,
    confinement: Confinement | None = None,
) -> BaseException | None:
    """Pump, wait, kill if interrupted; returns the interruption (Cancelled...) to re-raise."""
    drain = _Drain()
    pump_scope = trio.CancelScope(shield=True)
    # shielded: a cancel of the caller must reach only process.wait() below (a Cancelled
    # raised in a child task would come out of the nursery wrapped in an ExceptionGroup)
    watch_scope = trio.CancelScope(shield=True)
    interrupted: BaseException | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_pumps, pump_scope, drain, process, emitter)
        if plan.stdin is not None and process.stdin is not None:
            nursery.start_soon(_feed, process.stdin, plan.stdin)
        if confinement is not None:
            nursery.start_soon(_watch, watch_scope, confinement, handle)
        try:
            await process.wait()
        except BaseException as exc:  # noqa: BLE001 - Cancelled or KeyboardInterrupt: kill, drain, re-raise
            interrupted = exc
            with trio.CancelScope(shield=True):
                await _terminate(process, handle, kill_grace, force_kill)
        watch_scope.cancel()
        handle.exit_code = process.returncode
        # the command ended on its own but left live processes (`cmd &`, nohup): they die with
        # the task, and the log says so (signal 0 first: the common path never scans /proc)
        left_behind = (
            interrupted is None and not (confinement and confinement.reaps_leftovers)
            and _signal_group(handle, 0) and _group_running(handle.pgid)
        )
        reaped = confinement is not None and confinement.reaps_leftovers
        # grandchildren still in the group get SIGKILL; a sandbox's are being ended by the
        # kernel already (its pid namespace), so their last milliseconds are not waited for
        if _signal_group(handle, signal.SIGKILL) and not reaped:
            with trio.CancelScope(shield=True):
                await _wait_group_gone(handle.pgid)
        drain.stop_reading_at(trio.current_time() + DRAIN_READ_DEADLINE)
    with trio.CancelScope(shield=True):
        if left_behind:
            await emitter.note(
                LogLevel.WARN,
                "the command exited but left processes running in its process group (background jobs, "
                "nohup); they were killed with SIGKILL: no process outlives its task",
            )
        for name in drain.timed_out:
            await emitter.note(
                LogLevel.WARN,
                f"stopped reading {name} {DRAIN_READ_DEADLINE:g} s after the plugin ended: "
                "a process outside its process group still holds the pipe open",
            )
        await emitter.finish()
    return interrupted


async def _watch(scope: trio.CancelScope, confinement: Confinement, handle: ProcessHandle) -> None:
    with scope:
        await confinement.watch(lambda: _signal_group(handle, signal.SIGKILL))


async def _pumps(scope: trio.CancelScope, drain: _Drain, process: trio.Process, emitter: LogEmitter) -> None:
    """Both pipe readers, shielded so they drain even after the caller is cancelled."""
    with scope:
        async with trio.open_nursery() as nursery:
            for name, stream in (("stdout", process.stdout), ("stderr", process.stderr)):
                if stream is not None:
                    nursery.start_soon(_pump, drain.reader(stream, name), name, emitter)


async def _pump(receive_some: Any, stream: Stream, emitter: LogEmitter) -> None:
    async def on_lines(lines: list[str]) -> None:
        await emitter.lines(stream, lines)

    # stdout may carry `::{"outputs": ...}::` lines up to the result cap (see `directives`)
    splitter = LineSplitter(MAX_LINE_BYTES, MAX_DIRECTIVE_BYTES if stream == "stdout" else None, emitter.mask_cut)
    await pump_lines(receive_some, splitter, on_lines, read_size=READ_SIZE)


async def _feed(stdin: trio.abc.SendStream, payload: bytes) -> None:
    """Write the input message and close stdin; a plugin that does not read it is fine."""
    try:
        await stdin.send_all(payload)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        try:
            await stdin.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


@dataclass
class RuntimeSettings:
    """What every runtime gets from the engine: the watchdog, how to stop, how much to keep."""

    reaper: GroupReaper | None = None
    kill_grace: float = DEFAULT_KILL_GRACE
    force_kill: trio.Event | None = None
    output_limit: int = DEFAULT_OUTPUT_LIMIT


@dataclass
class ProcessRuntime(RuntimeSettings):
    """The trusted-mode Runtime: :func:`run_action` with engine-wide settings bound."""

    async def run_action(
        self,
        invocation: Invocation,
        *,
        log_send: trio.MemorySendChannel[LogEntry],
        task_status: trio.TaskStatus[ProcessHandle] = trio.TASK_STATUS_IGNORED,
    ) -> Outcome:
        return await run_action(
            invocation,
            log_send=log_send,
            reaper=self.reaper,
            kill_grace=self.kill_grace,
            force_kill=self.force_kill,
            output_limit=self.output_limit,
            task_status=task_status,
        )

