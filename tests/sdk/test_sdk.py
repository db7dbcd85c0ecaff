"""The plugin SDK and the wire protocol, in-process (no engine needed)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kestra_trio.sdk import MAX_RECORD_BYTES, ActionFailed, Logger, Plugin, ProtocolError, bounded_log_record, protocol
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


def test_logger_metadata_may_be_named_like_its_parameters() -> None:
    stream = io.StringIO()
    log = Logger(stream)
    log.info("x", level="ERROR", message="m", msg="z", self="s", metadata={"a": 1})
    log.log("WARN", "y", level="DEBUG")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first == {
        "kt": "log",
        "level": "INFO",
        "message": "x",
        "metadata": {"level": "ERROR", "message": "m", "msg": "z", "self": "s", "metadata": {"a": 1}},
    }
    assert (second["level"], second["message"], second["metadata"]) == ("WARN", "y", {"level": "DEBUG"})


def _record_size(line: str) -> int:
    return len(line.encode("utf-8", "backslashreplace"))


@pytest.mark.parametrize("text", ["x", "é", "\x01", '"', "\udc80", "ab\n"])
def test_huge_log_messages_are_truncated_to_a_valid_record(text: str) -> None:
    stream = io.StringIO()
    message = text * 200_000
    Logger(stream).error(message, step=1)
    line = stream.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    assert MAX_RECORD_BYTES - 64 < _record_size(line[:-1]) <= MAX_RECORD_BYTES
    level, _, metadata = protocol.decode_log_record(line)  # type: ignore[misc]
    assert level == "ERROR" and metadata == {"step": 1}
    text_out = json.loads(line)["message"]  # decode_log_record replaces lone surrogates
    kept, _, marker = text_out.rpartition("... [truncated ")
    assert message.startswith(kept) and len(kept) > 1000
    dropped = len(message.encode("utf-8", "surrogatepass")) - len(kept.encode("utf-8", "surrogatepass"))
    assert marker == f"{dropped} bytes]"


def test_huge_log_metadata_is_replaced_by_a_note() -> None:
    blob = "y" * 100_000
    line = bounded_log_record("WARN", "short message", {"blob": blob})
    assert _record_size(line) <= MAX_RECORD_BYTES
    level, message_out, metadata = protocol.decode_log_record(line)  # type: ignore[misc]
    assert (level, message_out) == ("WARN", "short message")
    assert metadata == {"truncated_metadata": True, "bytes": len(json.dumps({"blob": blob}))}
    # both too big: the message is cut after the metadata is replaced
    level, message_out, metadata = protocol.decode_log_record(bounded_log_record("DEBUG", "m" * 100_000, {"blob": blob}))  # type: ignore[misc]
    assert level == "DEBUG" and metadata["truncated_metadata"] is True
    assert message_out.startswith("m" * 50_000) and message_out.endswith(" bytes]")
    # metadata that leaves the message enough room is kept, the message is cut
    line = bounded_log_record("INFO", "m" * 100_000, {"blob": "y" * 30_000})
    assert _record_size(line) <= MAX_RECORD_BYTES
    assert protocol.decode_log_record(line)[2] == {"blob": "y" * 30_000}  # type: ignore[index]
    # a record that fits is exactly protocol.encode_log_record
    assert bounded_log_record("INFO", "hi", {"a": 1}) == protocol.encode_log_record("INFO", "hi", {"a": 1})


def test_logger_survives_a_closed_stream() -> None:
    stream = io.StringIO()
    stream.close()
    Logger(stream).info("dropped, not raised")


@pytest.mark.parametrize(
    ("statement", "code", "error"),
    [
        ("sys.exit()", 0, None),
        ("sys.exit(0)", 0, None),
        ("sys.exit(None)", 0, None),
        ("sys.exit(False)", 0, None),
        ("sys.exit(3)", 3, "action 'go' exited with code 3 (sys.exit)"),
        ("sys.exit(300)", 1, "action 'go' exited with code 300 (sys.exit)"),
        ("sys.exit('bye msg')", 1, "action 'go' exited: bye msg"),
    ],
)
def test_system_exit_in_an_action_is_a_result(statement: str, code: int, error: str | None) -> None:
    plugin = Plugin("demo")

    @plugin.action("go")
    def go(ctx: Context, inputs: dict) -> dict:
        eval(statement)  # noqa: S307
        return {"unreached": True}

    result, exit_code = plugin.run(message())
    assert exit_code == code
    if error is None:
        assert json.loads(result) == {"outputs": {}}
    else:
        got = json.loads(result)["error"]
        assert (got["message"], got["type"]) == (error, "SystemExit") and "eval(statement)" in got["stack"]


def test_outputs_over_the_result_limit_fail_clearly() -> None:
    plugin = Plugin("demo")
    plugin.action("go")(lambda ctx, inputs: {"big": "x" * protocol.MAX_RESULT_BYTES})
    result, code = plugin.run(message())
    assert code == 1 and len(result) < 1000
    error = json.loads(result)["error"]["message"]
    assert f"more than the engine accepts in a result ({protocol.MAX_RESULT_BYTES} bytes)" in error


CLOSES_STREAMS = """
import sys
from kestra_trio.sdk import Plugin
plugin = Plugin("demo")

@plugin.action("go")
def go(ctx, inputs):
    print("before")
    ctx.log.info("record before")
    for name in inputs["close"]:
        getattr(sys, name).close()
    for name in inputs["replace"]:
        setattr(sys, name, None)
    ctx.log.warn("record after", closed=inputs["close"])
    return {"ok": True}

plugin.main()
"""


@pytest.mark.parametrize(
    ("close", "replace"),
    [(["stdout"], []), (["stderr"], []), (["stdout", "stderr"], []), ([], ["stdout", "stderr"])],
)
def test_main_survives_user_code_closing_or_replacing_std_streams(
    tmp_path: Path, close: list[str], replace: list[str]
) -> None:
    root = str(Path(__file__).resolve().parents[2])
    program = tmp_path / "plugin.py"
    program.write_text(CLOSES_STREAMS)
    result_file = tmp_path / "result.json"
    env = {"PYTHONPATH": root, "PYTHONUNBUFFERED": "1", protocol.RESULT_FILE_ENV: str(result_file)}
    stdin = protocol.encode_input(protocol.InputMessage("go", {"close": close, "replace": replace}))
    proc = subprocess.run(
        [sys.executable, "-S", str(program)], input=stdin, capture_output=True, env=env, cwd=tmp_path, timeout=30
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(result_file.read_text()) == {"outputs": {"ok": True}}
    assert proc.stdout == b"before\n"
    records = [protocol.decode_log_record(line) for line in proc.stderr.decode().splitlines()]
    assert records == [("INFO", "record before", {}), ("WARN", "record after", {"closed": close})]
