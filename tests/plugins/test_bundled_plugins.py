"""Each bundled plugin, run as a real process through run_action."""

from __future__ import annotations

import contextlib
import functools
import json
from pathlib import Path
from typing import Any

import pytest
import trio

from kestra_trio.observability.records import LogLevel
from kestra_trio.state.states import Reason

pytestmark = pytest.mark.slow  # starts the real CLI or engine and its processes (--quick skips it)

RunBundled = Any
BOTH = pytest.mark.parametrize("runtime", ["builtin", "process"])  # engine-run and SDK shell agree


@BOTH
async def test_shell_command_success(run_bundled: RunBundled, runtime: str) -> None:
    outcome, entries = await run_bundled(
        "core/shell.run", {"command": "echo out; echo WARN careful >&2; echo plain >&2"}, runtime=runtime
    )
    assert outcome.ok and outcome.outputs == {"exit_code": 0}
    got = {(e.message, e.level, e.metadata["stream"]) for e in entries}
    assert got == {
        ("out", LogLevel.INFO, "stdout"),
        ("WARN careful", LogLevel.WARN, "stderr"),
        ("plain", LogLevel.WARN, "stderr"),
    }


@BOTH
async def test_shell_failure(run_bundled: RunBundled, runtime: str) -> None:
    outcome, entries = await run_bundled("core/shell.run", {"command": "echo nope >&2; exit 5"}, runtime=runtime)
    assert not outcome.ok and outcome.reason_code == Reason.PLUGIN_FAILED
    assert outcome.exit_code == 5 and outcome.error["message"] == "command exited with code 5"
    assert "nope" in outcome.error["stderr_tail"]


@BOTH
async def test_shell_argv_env_cwd(run_bundled: RunBundled, runtime: str, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    env = {"GREETING": "hi", "COUNT": 3, "RATIO": 2.5, "DRY": True}
    inputs = {"argv": ["sh", "-c", 'echo "$GREETING $COUNT $RATIO $DRY" && pwd', "ignored"], "env": env}
    inputs["cwd"] = "sub"
    outcome, entries = await run_bundled("core/shell.run", inputs, runtime=runtime, workdir=tmp_path)
    assert outcome.ok, outcome
    assert [e.message for e in entries] == ["hi 3 2.5 true", str(tmp_path / "sub")]  # JSON's true, not True


async def test_shell_missing_cwd_is_invalid_input_named_as_such(run_bundled: RunBundled, tmp_path: Path) -> None:
    outcome, _ = await run_bundled("core/shell.run", {"command": "true", "cwd": "nope"}, workdir=tmp_path)
    assert outcome.reason_code == Reason.INVALID_INPUT  # not "cannot start /bin/sh: No such file"
    assert outcome.error["message"].endswith(f"the working directory {tmp_path / 'nope'} does not exist")


async def test_shell_rejects_bad_inputs(run_bundled: RunBundled) -> None:
    outcome, _ = await run_bundled("core/shell.run", {"command": "true", "argv": ["true"]})
    assert outcome.reason_code == Reason.INVALID_INPUT
    outcome, _ = await run_bundled("core/shell.run", {"comand": "true"})
    assert outcome.reason_code == Reason.INVALID_INPUT and "comand" in outcome.error["message"]


@pytest.mark.parametrize(
    ("level", "expected"),
    [(None, LogLevel.INFO), ("DEBUG", LogLevel.DEBUG), ("warn", LogLevel.WARN), ("ERROR", LogLevel.ERROR)],
)
async def test_log_message_levels(run_bundled: RunBundled, level: str | None, expected: LogLevel) -> None:
    inputs = {"message": "hello [bold]world[/]"} | ({"level": level} if level else {})
    outcome, entries = await run_bundled("core/log.message", inputs)
    assert outcome.ok and outcome.outputs == {}
    assert [(e.message, e.level) for e in entries] == [("hello [bold]world[/]", expected)]


async def test_python_script_outputs_and_logs(run_bundled: RunBundled) -> None:
    script = "print('computing')\nctx.log.warn('careful', step=1)\noutputs['total'] = sum(inputs['xs'])\n"
    outcome, entries = await run_bundled("core/python.script", {"script": script, "inputs": {"xs": [1, 2, 3]}})
    assert outcome.ok and outcome.outputs == {"total": 6}
    # order is kept within a stream, not between stdout and stderr (docs/plugins.md)
    by_stream = {e.metadata["stream"]: (e.message, e.level) for e in entries}
    assert len(entries) == 2
    assert by_stream == {"stdout": ("computing", LogLevel.INFO), "stderr": ("careful", LogLevel.WARN)}
    assert next(e for e in entries if e.message == "careful").metadata["step"] == 1


async def test_python_script_errors(run_bundled: RunBundled) -> None:
    outcome, _ = await run_bundled("core/python.script", {"script": "x = 1\nx / 0"})
    assert outcome.reason_code == Reason.PLUGIN_FAILED and outcome.error["type"] == "ZeroDivisionError"
    assert outcome.error["message"] == "ZeroDivisionError: division by zero"
    # the traceback starts at the script and shows its lines, not the plugin's machinery
    assert outcome.error["stack"].splitlines()[1:3] == ['  File "<script>", line 2, in <module>', "    x / 0"]
    outcome, _ = await run_bundled("core/python.script", {"script": "raise KeyError('missing')"})
    assert outcome.error["message"] == "KeyError: 'missing'"  # str() alone would say "'missing'"
    outcome, _ = await run_bundled("core/python.script", {"script": "outputs['x'] = object()"})
    assert outcome.reason_code == Reason.PLUGIN_FAILED and "not JSON data" in outcome.error["message"]
    outcome, _ = await run_bundled("core/python.script", {"script": "ctx.fail('bad input')"})
    assert outcome.error["message"] == "bad input"


async def test_util_sleep_and_fail(run_bundled: RunBundled) -> None:
    outcome, _ = await run_bundled("core/util.sleep", {"seconds": 0.05})
    assert outcome.ok and outcome.outputs == {"slept": 0.05}
    outcome, _ = await run_bundled("core/util.fail", {"message": "on purpose", "exit_code": 9})
    assert outcome.reason_code == Reason.PLUGIN_FAILED and outcome.exit_code == 9
    assert outcome.error["message"] == "on purpose"


async def _serve_http(stream: trio.SocketStream, requests: list[bytes]) -> None:
    """A handwritten one-request HTTP/1.1 server (no threads): echoes what it got as JSON."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(v) for k, v in _headers(head) if k == "content-length"), 0)
    while len(body) < length:
        body += await stream.receive_some(65536)
    requests.append(head + b"\r\n\r\n" + body)
    method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
    status = "404 Not Found" if path == "/missing" else "200 OK"
    if path == "/text":
        payload, ctype = b"just text", "text/plain"
    else:
        payload, ctype = json.dumps({"method": method, "path": path, "body": body.decode()}).encode(), "application/json"
    response = (
        f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(payload)}\r\n"
        "X-Test: yes\r\nConnection: close\r\n\r\n"
    ).encode() + payload
    await stream.send_all(response)
    await stream.aclose()


def _headers(head: bytes) -> list[tuple[str, str]]:
    lines = head.decode().split("\r\n")[1:]
    return [(k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]


async def test_http_request(run_bundled: RunBundled, nursery: trio.Nursery) -> None:
    requests: list[bytes] = []
    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, lambda s: _serve_http(s, requests), 0, host="127.0.0.1")
    )
    port = listeners[0].socket.getsockname()[1]
    base = f"http://127.0.0.1:{port}"

    inputs = {"method": "post", "url": f"{base}/items", "body": {"a": 1}, "headers": {"X-Key": "k"}}
    outcome, entries = await run_bundled("core/http.request", inputs)
    assert outcome.ok, outcome
    assert outcome.outputs["status"] == 200 and outcome.outputs["headers"]["x-test"] == "yes"
    assert outcome.outputs["body"] == {"method": "POST", "path": "/items", "body": '{"a": 1}'}
    assert b"Content-Type: application/json" in requests[0] and b"X-Key: k" in requests[0]
    assert entries[0].message == f"POST {base}/items"

    outcome, _ = await run_bundled("core/http.request", {"url": f"{base}/text"})
    assert outcome.ok and outcome.outputs["body"] == "just text"

    outcome, _ = await run_bundled("core/http.request", {"url": f"{base}/missing"})
    assert outcome.reason_code == Reason.PLUGIN_FAILED and "returned HTTP 404" in outcome.error["message"]
    outcome, _ = await run_bundled("core/http.request", {"url": f"{base}/missing", "allow_failed": True})
    assert outcome.ok and outcome.outputs["status"] == 404


async def test_http_connection_refused(run_bundled: RunBundled) -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    outcome, _ = await run_bundled("core/http.request", {"url": f"http://127.0.0.1:{port}/", "timeout": 2})
    assert outcome.reason_code == Reason.PLUGIN_FAILED and "refused" in outcome.error["message"].lower()


@pytest.mark.parametrize("exit_call", ["sys.exit(0)", "sys.exit()", "sys.exit(None)", "raise SystemExit"])
async def test_python_script_sys_exit_success_keeps_outputs(run_bundled: RunBundled, exit_call: str) -> None:
    script = f"import sys\noutputs['a'] = 1\n{exit_call}\noutputs['b'] = 2\n"
    outcome, _ = await run_bundled("core/python.script", {"script": script})
    assert outcome.ok, outcome
    assert outcome.outputs == {"a": 1}


@pytest.mark.parametrize(
    ("exit_call", "exit_code", "message"),
    [
        ("sys.exit(3)", 3, "the script exited with code 3 (sys.exit)"),
        ("sys.exit('bye msg')", 1, "the script exited: bye msg"),
    ],
)
async def test_python_script_sys_exit_failure(
    run_bundled: RunBundled, exit_call: str, exit_code: int, message: str
) -> None:
    outcome, _ = await run_bundled("core/python.script", {"script": f"import sys\noutputs['a'] = 1\n{exit_call}\n"})
    assert outcome.reason_code == Reason.PLUGIN_FAILED and outcome.exit_code == exit_code
    assert outcome.error["message"] == message and outcome.error["type"] == "SystemExit"
    assert 'File "<script>", line 3' in outcome.error["stack"]


@pytest.mark.parametrize(
    "statements",
    ["sys.stdout.close()", "sys.stderr.close()", "sys.stdout.close(); sys.stderr.close()", "sys.stdout = sys.stderr = None"],
)
async def test_python_script_may_close_or_replace_std_streams(run_bundled: RunBundled, statements: str) -> None:
    script = f"import sys\nprint('before')\n{statements}\nctx.log.warn('after', n=1)\noutputs['ok'] = True\n"
    outcome, entries = await run_bundled("core/python.script", {"script": script})
    assert outcome.ok and outcome.outputs == {"ok": True}, outcome
    assert sorted((e.message, e.level, e.metadata["stream"]) for e in entries) == [
        ("after", LogLevel.WARN, "stderr"),
        ("before", LogLevel.INFO, "stdout"),
    ]


async def test_python_script_log_metadata_named_level(run_bundled: RunBundled) -> None:
    script = "ctx.log.info('x', level='ERROR', message='m', msg='z')\n"
    outcome, entries = await run_bundled("core/python.script", {"script": script})
    assert outcome.ok, outcome
    [entry] = entries
    assert (entry.message, entry.level) == ("x", LogLevel.INFO)
    assert {k: entry.metadata[k] for k in ("level", "message", "msg")} == {"level": "ERROR", "message": "m", "msg": "z"}


async def test_python_script_huge_log_records_keep_their_level(run_bundled: RunBundled) -> None:
    script = (
        "ctx.log.error('x' * 200_000, step=1)\n"
        "ctx.log.warn('small', blob='y' * 200_000)\n"
        "ctx.log.debug('é' * 100_000, blob='y' * 100_000)\n"
    )
    outcome, entries = await run_bundled("core/python.script", {"script": script})
    assert outcome.ok, outcome
    assert [e.level for e in entries] == [LogLevel.ERROR, LogLevel.WARN, LogLevel.DEBUG]
    first, second, third = entries
    assert first.message.startswith("x" * 60_000) and first.message.endswith(" bytes]")
    assert "line truncated" not in first.message and first.metadata["step"] == 1
    assert second.message == "small" and second.metadata["truncated_metadata"] is True
    assert second.metadata["bytes"] > 200_000 and "blob" not in second.metadata
    assert third.message.startswith("é" * 20_000) and third.metadata["truncated_metadata"] is True


async def _drip(stream: trio.SocketStream, where: str, pause: float) -> None:
    """Answer slowly, one byte at a time: never idle for long, never done."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some(65536)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
    if where == "headers":
        for byte in head:
            await stream.send_all(bytes([byte]))
            await trio.sleep(pause)
    await stream.send_all(head)
    while True:
        await stream.send_all(b"x")
        await trio.sleep(pause)


async def _listen(nursery: trio.Nursery, handler: Any) -> str:
    """Serve ``handler(stream)`` on 127.0.0.1; a client that hangs up (as the plugin does on a
    timeout or an oversized body) ends the handler quietly."""

    async def quiet(stream: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await handler(stream)

    listeners = await nursery.start(functools.partial(trio.serve_tcp, quiet, 0, host="127.0.0.1"))
    return f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"


@pytest.mark.parametrize("where", ["headers", "body"])
async def test_http_timeout_is_a_deadline_for_the_whole_request(
    run_bundled: RunBundled, nursery: trio.Nursery, where: str
) -> None:
    base = await _listen(nursery, lambda s: _drip(s, where, 0.2))
    started = trio.current_time()
    outcome, _ = await run_bundled("core/http.request", {"url": f"{base}/slow", "timeout": 1})
    elapsed = trio.current_time() - started
    assert outcome.reason_code == Reason.PLUGIN_FAILED
    assert outcome.error["message"].startswith(f"GET {base}/slow timed out after 1 s")
    assert elapsed < 5


async def _big(stream: trio.SocketStream, size: int, chunked: bool) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some(65536)
    if chunked:
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
        block = b"z" * 65536
        for start in range(0, size, len(block)):
            part = block[: min(len(block), size - start)]
            await stream.send_all(b"%x\r\n%s\r\n" % (len(part), part))
        await stream.send_all(b"0\r\n\r\n")
    else:
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % size)
        await stream.send_all(b"z" * size)
    with trio.move_on_after(5):
        await stream.aclose()


@pytest.mark.parametrize("chunked", [False, True])
async def test_http_body_over_the_cap_fails_clearly(run_bundled: RunBundled, nursery: trio.Nursery, chunked: bool) -> None:
    size = 50 * 1024 * 1024
    base = await _listen(nursery, lambda s: _big(s, size, chunked))
    outcome, _ = await run_bundled("core/http.request", {"url": f"{base}/big"})
    assert outcome.reason_code == Reason.PLUGIN_FAILED, outcome
    message = outcome.error["message"]
    assert message.startswith(f"GET {base}/big: response body larger than {10 * 1024 * 1024} bytes")
    assert "raise max_body_bytes" in message
    assert ("Content-Length" in message) is not chunked


@pytest.mark.parametrize("chunked", [False, True])
async def test_http_max_body_bytes(run_bundled: RunBundled, nursery: trio.Nursery, chunked: bool) -> None:
    base = await _listen(nursery, lambda s: _big(s, 5000, chunked))
    outcome, _ = await run_bundled("core/http.request", {"url": base, "max_body_bytes": 5000})
    assert outcome.ok and outcome.outputs["body"] == "z" * 5000, outcome
    outcome, _ = await run_bundled("core/http.request", {"url": base, "max_body_bytes": 4999})
    assert "response body larger than 4999 bytes" in outcome.error["message"]


async def test_log_message_from_a_yaml_block_loses_only_its_final_newline(run_bundled: RunBundled) -> None:
    outcome, entries = await run_bundled("core/log.message", {"message": "first\n  second\n"})
    assert outcome.ok and [e.message for e in entries] == ["first\n  second"]
