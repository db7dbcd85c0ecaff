"""run_action with real child processes: protocol, logs, failures, cancellation, limits."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio

from kestra_trio.observability.records import LogEntry, LogLevel
from kestra_trio.plugin_runtime.process import run_action
from kestra_trio.plugin_runtime.runtime import ProcessHandle
from kestra_trio.state.states import Reason

MakePlugin = Any
RunPlugin = Any
InvFor = Any

SDK_OK = """
from kestra_trio.sdk import Plugin
plugin = Plugin("test")

@plugin.action("go")
def go(ctx, inputs):
    print("out 1"); print("out 2")
    import sys
    print("err 1", file=sys.stderr); print("err 2", file=sys.stderr)
    ctx.log.error("record", disk="/", plugin="spoofed")
    ctx.log.debug("details")
    return {"sum": inputs["a"] + inputs["b"], "secret": ctx.secrets.get("TOKEN"), "none": ctx.secrets.get("NOPE")}

plugin.main()
"""


def group_alive(pgid: int) -> bool:
    """True while a non-zombie process of the group runs, waiting up to 1 s for SIGKILL to land."""
    deadline = time.monotonic() + 1.0
    while _group_running(pgid):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.01)
    return False


def _group_running(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # zombies still count for killpg; they are not running
    return any(p.info["status"] != psutil.STATUS_ZOMBIE for p in psutil.process_iter(["status"]) if _pgid(p) == pgid)


def _pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except OSError:
        return None


def messages(entries: list[LogEntry], stream: str) -> list[str]:
    return [e.message for e in entries if e.metadata.get("stream") == stream]


async def test_success_outputs_logs_and_metadata(inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin) -> None:
    manifest = make_plugin(SDK_OK, output_schema={"type": "object", "required": ["sum"]})
    inv = inv_for(manifest, {"a": 2, "b": 3}, attempt=2, secrets={"TOKEN": "s3cr3t"})
    outcome, entries = await run_plugin(inv)
    assert outcome.ok, outcome
    assert outcome.outputs == {"sum": 5, "secret": "s3cr3t", "none": None}
    assert outcome.exit_code == 0 and outcome.reason_code is None
    assert messages(entries, "stdout") == ["out 1", "out 2"]
    assert messages(entries, "stderr") == ["err 1", "err 2", "record", "details"]
    by_message = {e.message: e for e in entries}
    assert by_message["out 1"].level == LogLevel.INFO
    assert by_message["err 1"].level == LogLevel.WARN  # stderr, no level token
    assert by_message["record"].level == LogLevel.ERROR  # SDK record keeps its level
    assert by_message["details"].level == LogLevel.DEBUG
    assert by_message["record"].metadata == {
        "disk": "/",
        "plugin": "t/test",  # core keys cannot be spoofed
        "action": "go",
        "stream": "stderr",
        "attempt": 2,
    }
    entry = by_message["out 1"]
    assert (entry.execution_id, entry.task_id, entry.source) == ("exec-1", "task-1", "plugin:t/test.go")


async def test_plugin_in_any_language(inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin) -> None:
    script = """
    input=$(cat)
    echo "got: $input"
    echo "WARN this is a warning" >&2
    printf '{"outputs": {"ok": true}}' > "$KESTRA_TRIO_RESULT_FILE"
    """
    manifest = make_plugin(script, command=["/bin/sh", "main.py"])
    outcome, entries = await run_plugin(inv_for(manifest, {"x": 1}, task_id="shell-task"))
    assert outcome.ok and outcome.outputs == {"ok": True}
    got = entries[0].message if entries[0].metadata["stream"] == "stdout" else entries[1].message
    assert got.startswith('got: {"protocol":1,"action":"go","inputs":{"x":1}')
    assert '"task_id":"shell-task"' in got
    assert any(e.level == LogLevel.WARN and e.message == "WARN this is a warning" for e in entries)


async def test_handle_is_given_at_start(inv_for: InvFor, make_plugin: MakePlugin) -> None:
    manifest = make_plugin(SDK_OK)
    send, receive = trio.open_memory_channel[LogEntry](100)
    async with trio.open_nursery() as nursery:
        handle: ProcessHandle = await nursery.start(
            lambda task_status: run_action(
                inv_for(manifest, {"a": 1, "b": 1}), log_send=send, task_status=task_status
            )
        )
        assert handle.pid == handle.pgid and handle.pid > 0
    assert handle.exit_code == 0 and handle.signal_sent is None and not handle.killed_by_us


async def test_invalid_input_does_not_start(inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    manifest = make_plugin("raise SystemExit('must not run')", input_schema=schema)
    outcome, entries = await run_plugin(inv_for(manifest, {"a": "x", "b": [1]}))
    assert outcome.reason_code == Reason.INVALID_INPUT
    # our part: which input, by its path (the problem itself is said in jsonschema's words)
    assert outcome.error["message"].startswith("inputs do not match the input schema of t/test.go: inputs.a: ")
    assert "inputs.b" not in outcome.error["message"] and entries == []


async def test_nonzero_exit_with_stderr_tail(inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin) -> None:
    code = "import sys\nfor i in range(30): print(f'problem {i}', file=sys.stderr)\nsys.exit(3)\n"
    outcome, entries = await run_plugin(inv_for(make_plugin(code)))
    assert outcome.reason_code == Reason.PLUGIN_FAILED and outcome.exit_code == 3
    assert outcome.error["message"] == "plugin exited with code 3"
    assert outcome.error["stderr_tail"] == [f"problem {i}" for i in range(10, 30)]
    assert len(entries) == 30


async def test_missing_result(inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin) -> None:
    outcome, _ = await run_plugin(inv_for(make_plugin("print('no result')")))
    assert outcome.reason_code == Reason.INVALID_RESULT
    assert "gave no valid result: the result file is empty" in outcome.error["message"]


@pytest.mark.parametrize(
    ("payload", "reason", "message"),
    [
        ("not json", Reason.INVALID_RESULT, "the result file is not valid JSON"),
        ('{"outputs": [1]}', Reason.INVALID_RESULT, '"outputs" must be a JSON object'),
        ('{"something": 1}', Reason.INVALID_RESULT, 'exactly one of "outputs" or "error"'),
        ('{"error": {"message": "quota exceeded", "type": "Quota"}}', Reason.PLUGIN_FAILED, "quota exceeded"),
        ('{"outputs": {"x": NaN}}', Reason.INVALID_RESULT, "NaN is not JSON"),
        ('{"outputs": {"x": [-Infinity]}}', Reason.INVALID_RESULT, "-Infinity is not JSON"),
        ('{"outputs": {"x": 1e999}}', Reason.INVALID_RESULT, "number 1e999 is too large"),
        ('{"outputs": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}", Reason.INVALID_RESULT, "nested too deeply"),
    ],
    # short ids: pytest puts the test id in PYTEST_CURRENT_TEST, which the plugin process inherits
    # (200 KB of brackets there made its exec fail with E2BIG on pytest 8.0)
    ids=["not-json", "outputs-not-object", "neither", "error", "nan", "infinity", "too-large", "too-deep"],
)
async def test_bad_or_error_result(inv_for: InvFor, 
    make_plugin: MakePlugin, run_plugin: RunPlugin, payload: str, reason: Reason, message: str
) -> None:
    code = f"import os\nopen(os.environ['KESTRA_TRIO_RESULT_FILE'], 'w').write({payload!r})\n"
    outcome, _ = await run_plugin(inv_for(make_plugin(code)))
    assert outcome.reason_code == reason, outcome.error["message"][:300]
    assert message in outcome.error["message"]


async def test_output_schema_mismatch(inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin) -> None:
    code = "import os\nopen(os.environ['KESTRA_TRIO_RESULT_FILE'], 'w').write('{\"outputs\": {\"n\": \"x\"}}')\n"
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n", "m"]}
    outcome, _ = await run_plugin(inv_for(make_plugin(code, output_schema=schema)))
    assert outcome.reason_code == Reason.INVALID_RESULT
    message = outcome.error["message"]
    assert message.startswith("outputs do not match the output schema of t/test.go: ")
    # both problems, each at its path, in path order (in jsonschema's words)
    problems = message.split(": ", 1)[1].split("; ")
    assert [problem.split(": ", 1)[0] for problem in problems] == ["outputs", "outputs.n"]
    assert "'m'" in problems[0] and "'x'" in problems[1]


async def test_uncaught_exception_reports_type_and_stack(inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin) -> None:
    code = """
    from kestra_trio.sdk import Plugin
    plugin = Plugin("test")
    @plugin.action("go")
    def go(ctx, inputs):
        return {}["missing"]
    plugin.main()
    """
    outcome, _ = await run_plugin(inv_for(make_plugin(code)))
    assert outcome.reason_code == Reason.PLUGIN_FAILED and outcome.exit_code == 1
    assert outcome.error["type"] == "KeyError" and outcome.error["message"] == "KeyError: 'missing'"
    assert 'return {}["missing"]' in outcome.error["stack"]
    # the stack starts at the author's code: the SDK's dispatch frames are left out
    assert "kestra_trio/sdk" not in outcome.error["stack"] and "in go" in outcome.error["stack"]


@pytest.mark.parametrize("command", [["/nonexistent/plugin-binary"], ["./main.py"]])
async def test_cannot_start(inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin, command: list[str]) -> None:
    manifest = make_plugin("# not executable", command=command)  # main.py has no +x: EACCES
    outcome, entries = await run_plugin(inv_for(manifest))
    assert outcome.reason_code == Reason.PLUGIN_NOT_STARTED
    assert outcome.error["message"].startswith("cannot start ")
    reason = os.strerror(errno.ENOENT) if command[0].startswith("/") else os.strerror(errno.EACCES)
    assert reason in outcome.error["message"]
    assert entries == []


async def test_killed_by_foreign_signal_is_a_crash(inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin) -> None:
    code = "import os, signal\nprint('about to crash', flush=True)\nos.kill(os.getpid(), signal.SIGSEGV)\n"
    outcome, entries = await run_plugin(inv_for(make_plugin(code)))
    assert outcome.reason_code == Reason.PLUGIN_CRASHED
    assert outcome.error["signal"] == "SIGSEGV" and outcome.error["message"] == "plugin was killed by SIGSEGV"
    assert messages(entries, "stdout") == ["about to crash"]


async def test_result_file_is_removed(inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin) -> None:
    code = "import os\np = os.environ['KESTRA_TRIO_RESULT_FILE']\nprint(p)\nopen(p, 'w').write('{\"outputs\": {}}')\n"
    outcome, entries = await run_plugin(inv_for(make_plugin(code)))
    assert outcome.ok
    assert not os.path.exists(messages(entries, "stdout")[0])


async def _cancel_when(
    inv: Any, predicate: Any, *, kill_grace: float = 5.0, limit: float | None = 20, on_start: Any = None
) -> tuple[ProcessHandle, list[LogEntry], bool]:
    """Run ``inv``; cancel it once ``predicate(entry)`` is true; return (handle, entries, returned).

    ``limit=None`` sets no deadline: under ``autojump_clock`` a deadline is where the clock
    jumps while a real child is still starting (idle to trio), failing a test that is fine.
    """
    send, receive = trio.open_memory_channel[LogEntry](0)
    entries: list[LogEntry] = []
    returned = False
    scope = trio.CancelScope()

    async def consume() -> None:
        async for item in receive:  # single entries or lists of them
            for entry in item if isinstance(item, list) else [item]:
                entries.append(entry)
                if predicate(entry):
                    scope.cancel()

    async def runner(task_status: trio.TaskStatus[ProcessHandle] = trio.TASK_STATUS_IGNORED) -> None:
        nonlocal returned
        with send, scope:
            await run_action(inv, log_send=send, kill_grace=kill_grace, task_status=task_status)
            returned = True

    with trio.fail_after(limit) if limit is not None else contextlib.nullcontext():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            handle = await nursery.start(runner)
            if on_start is not None:
                on_start(handle.pgid)
    return handle, entries, returned


async def test_cancel_kills_the_whole_group(inv_for: InvFor, make_plugin: MakePlugin) -> None:
    code = """
    import subprocess, time
    # a grandchild shell and its two children; it says ready once both are forked
    subprocess.Popen(["sh", "-c", "sleep 100 & sleep 100 & echo ready; wait"])
    time.sleep(100)
    """
    pgids: list[int] = []

    def ready(entry: LogEntry) -> bool:
        if entry.message != "ready":
            return False
        assert len([p for p in psutil.process_iter() if _pgid(p) == pgids[0]]) >= 4
        return True

    inv = inv_for(make_plugin(code))
    handle, entries, returned = await _cancel_when(inv, ready, on_start=pgids.append)
    assert not returned
    assert handle.signal_sent == "SIGTERM" and handle.killed_by_us
    assert handle.exit_code == -signal.SIGTERM
    assert not group_alive(handle.pgid)


class _Capture:
    """A stand-in TaskStatus for calling run_action directly under move_on_after."""

    value: Any = None

    def started(self, value: Any = None) -> None:
        self.value = value


async def test_move_on_after_kills_builtin_shell_group(inv_for: InvFor, make_plugin: MakePlugin) -> None:
    manifest = make_plugin(command=["unused"], name="shell", namespace="core", action="run", runtime="builtin")
    inv = inv_for(manifest, {"command": "sleep 100 & sleep 100"})
    send, _receive = trio.open_memory_channel[LogEntry](100)
    status = _Capture()
    with trio.move_on_after(0.3) as scope:
        await run_action(inv, log_send=send, task_status=status)  # type: ignore[arg-type]
    assert scope.cancelled_caught
    handle: ProcessHandle = status.value
    assert handle.signal_sent == "SIGTERM"
    assert not group_alive(handle.pgid)


async def test_sigterm_ignoring_plugin_gets_sigkill_after_grace(inv_for: InvFor, 
    make_plugin: MakePlugin, autojump_clock: trio.testing.MockClock
) -> None:
    # a slow start (a loaded machine) must not matter: the only timer is the grace period,
    # so the clock cannot jump before the plugin is ready and has been cancelled
    code = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(0.3)\n"
        "print('ready', flush=True)\ntime.sleep(100)\n"
    )
    autojump_clock.autojump_threshold = 0.1  # real processes: jump only when truly idle
    start = trio.current_time()
    handle, _, returned = await _cancel_when(
        inv_for(make_plugin(code)), lambda e: e.message == "ready", kill_grace=5.0, limit=None
    )
    assert not returned
    assert handle.signal_sent == "SIGKILL" and handle.exit_code == -signal.SIGKILL
    assert trio.current_time() - start >= 5.0  # the grace was waited (on the mock clock)
    assert not group_alive(handle.pgid)


async def test_lines_written_before_cancel_are_all_delivered(inv_for: InvFor, make_plugin: MakePlugin) -> None:
    code = """
    import os, signal, sys
    n = 0
    def on_term(*_):
        sys.stderr.write(f"TERM after {n}\\n")
        os._exit(0)
    signal.signal(signal.SIGTERM, on_term)
    while True:
        os.write(1, f"line {n}\\n".encode())
        n += 1
    """
    handle, entries, returned = await _cancel_when(
        inv_for(make_plugin(code)), lambda e: e.message == "line 2000"
    )
    assert not returned and handle.signal_sent == "SIGTERM"
    (term,) = [e.message for e in entries if e.message.startswith("TERM after")]
    written = int(term.split()[-1])
    assert written > 2000
    got = messages(entries, "stdout")
    # the handler may run after os.write() returned but before `n += 1`: one more line is fine
    assert len(got) in (written, written + 1)
    assert got == [f"line {i}" for i in range(len(got))]


async def test_leader_exit_kills_background_grandchildren(inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin) -> None:
    manifest = make_plugin(command=["unused"], name="shell", namespace="core", action="run", runtime="builtin")
    with trio.fail_after(30):  # the grandchild holds stdout open for 100 s; it must not keep us waiting
        outcome, entries = await run_plugin(inv_for(manifest, {"command": "sleep 100 & echo started $!"}))
    assert outcome.ok
    pid = int(entries[0].message.split()[-1])
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_escaped_grandchild_cannot_hold_the_task(
    inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin, tmp_path: Path
) -> None:
    manifest = make_plugin(command=["unused"], name="shell", namespace="core", action="run", runtime="builtin")
    pid_file = tmp_path / "grandchild.pid"
    command = f"echo hi; setsid sleep 600 & echo $! > {pid_file}; sleep 0.3"
    try:
        # run_plugin's 20 s deadline fails the test if the task waits for the grandchild (600 s)
        outcome, entries = await run_plugin(inv_for(manifest, {"command": command}))
        assert outcome.ok
        assert any("still holds the pipe open" in e.message and e.level == LogLevel.WARN for e in entries)
        assert messages(entries, "stdout") == ["hi"]
    finally:  # it left the task's process group on purpose (setsid): it is ours to end
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


async def test_output_cap_keeps_tail_and_warns(inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin) -> None:
    manifest = make_plugin(command=["unused"], name="shell", namespace="core", action="run", runtime="builtin")
    # 12,000 lines of 1,000 bytes (+ newline): 12 MB through a 10 MiB cap
    script = "awk 'BEGIN { s = sprintf(\"%0995d\", 0); for (i = 0; i < 12000; i++) printf \"%05d%s\\n\", i, s }'"
    outcome, entries = await run_plugin(inv_for(manifest, {"command": script}))
    assert outcome.ok
    (warn,) = [e for e in entries if e.metadata.get("truncated")]
    assert warn.level == LogLevel.WARN and "10 MiB per-task limit" in warn.message
    index = entries.index(warn)
    head, tail = entries[:index], entries[index + 1 :]
    assert len(head) == 10 * 1024 * 1024 // 1001
    assert [int(e.message[:5]) for e in head] == list(range(len(head)))
    assert tail[-1].message.startswith("11999") and len(tail) == 64 * 1024 // 1001
    assert warn.metadata["dropped_lines"] == 12000 - len(head) - len(tail)
    assert warn.metadata["dropped_bytes"] == warn.metadata["dropped_lines"] * 1001


async def test_50_mb_single_line_keeps_memory_bounded(inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin) -> None:
    manifest = make_plugin(command=["unused"], name="shell", namespace="core", action="run", runtime="builtin")
    inv = inv_for(manifest, {"command": "head -c 50000000 /dev/zero | tr '\\0' a; echo; echo after"})
    tracemalloc.start()
    try:
        outcome, entries = await run_plugin(inv)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.ok
    assert [len(e.message) for e in entries][1:] == [5]
    assert entries[0].message.endswith(f"[line truncated: {50_000_000 - 65536} bytes dropped]")
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes"


async def test_builtin_shell_outcomes(inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin) -> None:
    manifest = make_plugin(command=["unused"], name="shell", namespace="core", action="run", runtime="builtin")
    outcome, entries = await run_plugin(inv_for(manifest, {"command": "echo ERROR bad >&2; exit 7"}))
    assert outcome.reason_code == Reason.PLUGIN_FAILED and outcome.exit_code == 7
    assert outcome.error["message"] == "command exited with code 7"
    assert outcome.error["stderr_tail"] == ["ERROR bad"] and entries[0].level == LogLevel.ERROR
    outcome, _ = await run_plugin(inv_for(manifest, {"argv": ["/nonexistent/x"]}))
    assert outcome.reason_code == Reason.PLUGIN_NOT_STARTED
    outcome, _ = await run_plugin(inv_for(manifest, {"command": "kill -KILL $$"}))
    assert outcome.reason_code == Reason.PLUGIN_CRASHED and outcome.error["signal"] == "SIGKILL"


async def test_lone_surrogates_in_a_result_or_record_are_replaced(inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin) -> None:
    # JSON may spell a lone surrogate; Python keeps it, SQLite and terminals refuse it
    code = (
        "import os, sys\n"
        "sys.stderr.write('{\"kt\": \"log\", \"level\": \"ERROR\", \"message\": \"a\\\\ud800b\"}\\n')\n"
        "open(os.environ['KESTRA_TRIO_RESULT_FILE'], 'w').write('{\"outputs\": {\"x\": \"c\\\\udfffd\", \"\\\\ud83d\": 1}}')\n"
    )
    outcome, entries = await run_plugin(inv_for(make_plugin(code)))
    assert outcome.ok, outcome
    assert outcome.outputs == {"x": "c\ufffdd", "\ufffd": 1}
    assert [(e.level, e.message) for e in entries] == [(LogLevel.ERROR, "a\ufffdb")]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"argv": ["echo", "a\0b"]}, "argument 1 contains a NUL byte"),
        ({"command": "echo a\0b"}, "argument 2 contains a NUL byte"),
        ({"command": "true", "env": {"X": "a\0b"}}, "environment variable X contains a NUL byte"),
        ({"command": "true", "env": {"X=Y": "a"}}, "environment variable name 'X=Y' is not valid"),
        ({"command": "true", "cwd": "a\0b"}, "the working directory contains a NUL byte"),
        # the OS would say "No such file or directory" about /bin/sh itself
        ({"command": "pwd", "cwd": "/nonexistent-dir"}, "the working directory /nonexistent-dir does not exist"),
        ({"command": "pwd", "cwd": "/etc/passwd"}, "the working directory /etc/passwd is not a directory"),
        # the kernel's E2BIG, said as what it is rather than "cannot start /bin/sh: Argument list too long"
        ({"command": "true", "env": {"BIG": "x" * 200_000}}, "an argument or environment variable is too large"),
    ],
)
async def test_what_the_os_cannot_exec_fails_the_task_not_the_engine(
    inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin, inputs: dict, message: str
) -> None:
    manifest = make_plugin(command=["unused"], name="shell", namespace="core", action="run", runtime="builtin")
    outcome, entries = await run_plugin(inv_for(manifest, inputs))
    assert outcome.reason_code == Reason.INVALID_INPUT
    assert outcome.error["message"].startswith(f"cannot start core/shell.run: {message}")
    assert entries == []


def test_python_token_is_the_engine_interpreter(make_plugin: MakePlugin) -> None:
    assert make_plugin("").argv[0] == sys.executable


async def test_a_late_reader_is_not_blamed_for_a_held_pipe() -> None:
    """Past the drain deadline, what is already in the pipe (and its EOF) is still read:
    on a starved machine the reader may just be late; only a pipe that would block counts."""
    from kestra_trio.plugin_runtime.process import _Drain

    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"last line\n")
    os.close(write_fd)
    drain = _Drain()
    drain.stop_reading_at(trio.current_time() - 1)  # the deadline is already behind us
    stream = trio.lowlevel.FdStream(read_fd)
    receive_some = drain.reader(stream, "stdout")
    assert await receive_some(1024) == b"last line\n"
    assert await receive_some(1024) == b""  # EOF
    await stream.aclose()
    assert drain.timed_out == []

    read_fd, write_fd = os.pipe()  # a writer that keeps the pipe open and says nothing
    held = _Drain()
    held.stop_reading_at(trio.current_time() - 1)
    stream = trio.lowlevel.FdStream(read_fd)
    assert await held.reader(stream, "stdout")(1024) == b""
    await stream.aclose()
    os.close(write_fd)
    assert held.timed_out == ["stdout"]


async def test_processes_left_behind_by_a_finished_command_are_killed_and_logged(
    inv_for: InvFor, make_plugin: MakePlugin, run_plugin: RunPlugin
) -> None:
    manifest = make_plugin(command=["unused"], name="shell", namespace="core", action="run", runtime="builtin")
    outcome, entries = await run_plugin(inv_for(manifest, {"command": "sleep 3519 & echo started"}))
    assert outcome.ok
    warnings = [e.message for e in entries if e.level == LogLevel.WARN]
    assert len(warnings) == 1 and "left processes running in its process group" in warnings[0]
    assert not [p for p in psutil.process_iter(["cmdline", "status"])
                if p.info["cmdline"] == ["sleep", "3519"] and p.info["status"] != psutil.STATUS_ZOMBIE]
    clean, clean_entries = await run_plugin(inv_for(manifest, {"command": "echo alone"}))
    assert clean.ok and [e.level for e in clean_entries] == [LogLevel.INFO]  # nothing to say
