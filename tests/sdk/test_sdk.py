"""The plugin SDK and the wire protocol, in-process (no engine needed)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kestra_trio.sdk import ActionFailed, Logger, Plugin, ProtocolError, protocol
from kestra_trio.sdk.context import Context


def message(action: str = "go", **inputs: object) -> protocol.InputMessage:
    return protocol.InputMessage(action=action, inputs=dict(inputs), secrets={"TOKEN": "t0k"})


def test_input_message_round_trip() -> None:
    original = protocol.InputMessage("go", {"x": [1, "é"]}, "e1", "t1", 3, {"A": "b"})
    data = protocol.encode_input(original)
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    decoded = protocol.decode_input(data)
    assert (decoded.action, decoded.inputs, decoded.execution_id, decoded.task_id, decoded.attempt) == (
        "go",
        {"x": [1, "é"]},
        "e1",
        "t1",
        3,
    )
    assert decoded.secrets == {"A": "b"} and "b" not in repr(decoded)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"nope", "stdin is not one JSON object"),
        (b"[]", "stdin must be one JSON object"),
        (b'{"protocol": 2, "action": "go"}', "unsupported protocol version 2"),
        (b'{"protocol": 1}', "no 'action' string"),
        (b'{"protocol": 1, "action": "go", "inputs": []}', "'inputs' must be a JSON object"),
    ],
)
def test_bad_input_messages(data: bytes, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        protocol.decode_input(data)


def test_results() -> None:
    assert protocol.decode_result(protocol.encode_outputs({"a": 1})).outputs == {"a": 1}
    error = protocol.decode_result(protocol.encode_error("bad", "Oops", "trace")).error
    assert error == {"message": "bad", "type": "Oops", "stack": "trace"}
    assert protocol.decode_result(b'{"error": "short"}').error == {"type": "Error", "message": "short"}
    with pytest.raises(ValueError):
        protocol.encode_outputs({"x": float("nan")})


def test_log_records_are_single_lines() -> None:
    line = protocol.encode_log_record("warning", "two\nlines", {"n": 1, "obj": object()})
    assert "\n" not in line
    level, text, metadata = protocol.decode_log_record(line)  # type: ignore[misc]
    assert (level, text, metadata["n"]) == ("WARN", "two\nlines", 1)
    assert metadata["obj"].startswith("<object object")
    assert protocol.decode_log_record("not a record") is None
    assert protocol.decode_log_record('{"kt": "metric"}') is None


def test_logger_writes_records() -> None:
    stream = io.StringIO()
    log = Logger(stream)
    log.debug("d")
    log.info("i", k="v")
    log.warn("w")
    log.error("e")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["level"] for r in records] == ["DEBUG", "INFO", "WARN", "ERROR"]
    assert records[1] == {"kt": "log", "level": "INFO", "message": "i", "metadata": {"k": "v"}}


def test_dispatch_outputs_fail_and_exceptions() -> None:
    plugin = Plugin("demo")

    @plugin.action("go")
    def go(ctx: Context, inputs: dict) -> dict:
        if inputs.get("fail"):
            ctx.fail("asked to fail", exit_code=4)
        if inputs.get("crash"):
            raise RuntimeError("boom")
        return {"secret": ctx.secrets.get("TOKEN"), "missing": ctx.secrets.get("NONE"), "n": ctx.inputs["n"]}

    result, code = plugin.run(message(n=1))
    assert code == 0 and json.loads(result) == {"outputs": {"secret": "t0k", "missing": None, "n": 1}}
    result, code = plugin.run(message(n=1, fail=True))
    assert code == 4 and json.loads(result)["error"] == {"message": "asked to fail", "type": "ActionFailed"}
    result, code = plugin.run(message(n=1, crash=True))
    error = json.loads(result)["error"]
    assert code == 1 and error["type"] == "RuntimeError" and "raise RuntimeError" in error["stack"]
    result, code = plugin.run(message("nope"))
    assert code == 1 and "has no action 'nope' (actions: go)" in json.loads(result)["error"]["message"]


def test_main_speaks_the_protocol(tmp_path: Path) -> None:
    plugin = Plugin("demo")
    plugin.action("go")(lambda ctx, inputs: {"doubled": inputs["n"] * 2})
    result_file = tmp_path / "result.json"
    stdin = io.BytesIO(protocol.encode_input(message(n=21)))
    with pytest.raises(SystemExit) as info:
        plugin.main(stdin=stdin, environ={protocol.RESULT_FILE_ENV: str(result_file)})
    assert info.value.code == 0
    assert json.loads(result_file.read_text()) == {"outputs": {"doubled": 42}}
    with pytest.raises(SystemExit) as info:
        plugin.main(stdin=io.BytesIO(b"garbage"), environ={protocol.RESULT_FILE_ENV: str(result_file)})
    assert info.value.code == 2 and json.loads(result_file.read_text())["error"]["type"] == "ProtocolError"


def test_action_failed_is_an_exception() -> None:
    assert ActionFailed("x").exit_code == 1


def test_sdk_imports_no_trio_and_nothing_else_from_kestra_trio() -> None:
    root = str(Path(__file__).resolve().parents[2])
    code = (
        "import sys, kestra_trio.sdk\n"
        "bad = [m for m in sys.modules if m == 'trio' or (m.startswith('kestra_trio.')"
        " and not m.startswith(('kestra_trio.sdk', 'kestra_trio.errors')))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-S", "-c", code], check=True, env={"PYTHONPATH": root})
