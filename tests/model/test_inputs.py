"""--input parsing and coercion against the workflow's declarations."""

from __future__ import annotations

from typing import Any

import pytest

from kestra_trio.errors import InputError
from kestra_trio.model.inputs import coerce_inputs, parse_input_args
from kestra_trio.model.workflow import InputSpec, TaskSpec, Workflow


def workflow(*inputs: InputSpec) -> Workflow:
    return Workflow(id="wf", tasks=(TaskSpec(id="a", type="core/log.message"),), inputs=inputs)


WF = workflow(
    InputSpec("name", "string", default="world", required=False),
    InputSpec("count", "integer"),
    InputSpec("ratio", "number", default=0.5, required=False),
    InputSpec("verbose", "boolean", default=False, required=False),
    InputSpec("config", "json", required=False),
)


def test_parse_input_args() -> None:
    assert parse_input_args(["a=1", "b=x=y", "c=", " d =v"]) == {"a": "1", "b": "x=y", "c": "", "d": "v"}


def test_parse_input_args_refuses_a_name_given_twice() -> None:
    with pytest.raises(InputError, match="--input a is given twice"):
        parse_input_args(["a=1", "a=2"])


@pytest.mark.parametrize("item", ["novalue", "=x", ""])
def test_parse_input_args_rejects(item: str) -> None:
    with pytest.raises(InputError, match="must be NAME=VALUE"):
        parse_input_args([item])


def test_defaults_and_optional_inputs() -> None:
    assert coerce_inputs(WF, {"count": "3"}) == {"name": "world", "count": 3, "ratio": 0.5, "verbose": False, "config": None}


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("count", " 42 ", 42),
        ("count", "-7", -7),
        ("ratio", "2", 2),
        ("ratio", "2.5", 2.5),
        ("ratio", "1e3", 1000.0),
        ("verbose", "yes", True),
        ("verbose", "TRUE", True),
        ("verbose", "1", True),
        ("verbose", "no", False),
        ("verbose", "0", False),
        ("config", '{"a": [1, 2]}', {"a": [1, 2]}),
        ("config", "3", 3),
        ("name", "  spaced  ", "  spaced  "),
    ],
)
def test_coercion(name: str, text: str, value: Any) -> None:
    raw = {"count": "1", name: text}
    assert coerce_inputs(WF, raw)[name] == value


def test_every_problem_in_one_message() -> None:
    with pytest.raises(InputError) as info:
        coerce_inputs(WF, {"nmae": "x", "ratio": "abc", "verbose": "maybe", "config": "{bad"})
    message, json_problem = str(info.value).rsplit("(", 1)  # the last is in the json module's words
    assert json_problem.endswith(" at character 1)")
    assert message + "(" == (
        "invalid inputs: unknown input 'nmae' (did you mean 'name'?); "
        "missing required input 'count' (pass --input count=VALUE); "
        "input 'ratio' must be a number, got 'abc'; "
        "input 'verbose' must be true or false (or yes/no, y/n, on/off, 1/0), got 'maybe'; "
        "input 'config' must be JSON ("
    )


@pytest.mark.parametrize("text", ["1.5", "x", "", "nan", "1_000", "\u0663", "0x10", "1\u00a0", "\u30001"])  # as written
def test_bad_integer(text: str) -> None:
    with pytest.raises(InputError, match="input 'count' must be an integer"):
        coerce_inputs(WF, {"count": text})


@pytest.mark.parametrize("text", ["nan", "inf", "", "1_0.5", "\u0663.5", "Infinity"])
def test_bad_number(text: str) -> None:
    with pytest.raises(InputError, match="input 'ratio' must be a number"):
        coerce_inputs(WF, {"count": "1", "ratio": text})


def test_unknown_input_on_a_workflow_without_inputs() -> None:
    with pytest.raises(InputError, match="this workflow declares no inputs"):
        coerce_inputs(workflow(), {"x": "1"})


def test_deep_json_is_an_input_error() -> None:
    with pytest.raises(InputError, match="nested too deeply"):
        coerce_inputs(WF, {"count": "1", "config": "[" * 100_000})


@pytest.mark.parametrize(
    ("text", "problem"),
    [("[NaN]", "NaN is not JSON"), ('{"a": Infinity}', "Infinity is not JSON"), ("[1e999]", "number 1e999 is too large")],
)
def test_json_input_must_be_real_json(text: str, problem: str) -> None:
    # Python's json accepts these; no other JSON reader does, and they would be stored as-is
    with pytest.raises(InputError, match=problem):
        coerce_inputs(WF, {"count": "1", "config": text})


def test_a_value_that_is_not_utf8_is_refused() -> None:
    # argv bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape)
    undecodable = b"caf\xe9".decode("utf-8", "surrogateescape")
    with pytest.raises(InputError, match="--input name: the value is not valid UTF-8 text"):
        parse_input_args([f"name={undecodable}"])


@pytest.mark.parametrize(("text", "value"), [("123456789012345678901234567890", 123456789012345678901234567890),
                                             ("-7", -7), ("2.5", 2.5), ("1e3", 1000.0)])
def test_number_keeps_a_whole_number_exact(text: str, value: float) -> None:
    result = coerce_inputs(WF, {"count": "1", "ratio": text})["ratio"]
    assert result == value and type(result) is type(value)  # not rounded through a float


@pytest.mark.parametrize("text", [str(2**63 - 1), str(-(2**63)), " 42 "])
def test_an_integer_in_64_bits_is_taken(text: str) -> None:
    assert coerce_inputs(WF, {"count": text})["count"] == int(text)


@pytest.mark.parametrize("text", [str(2**63), str(-(2**63) - 1), "9" * 4000])
def test_an_integer_beyond_64_bits_is_refused_with_the_range_and_a_bounded_quote(text: str) -> None:
    with pytest.raises(InputError) as caught:
        coerce_inputs(WF, {"count": text})
    message = str(caught.value)
    assert "input 'count' must be an integer between -9223372036854775808 and 9223372036854775807" in message
    assert len(message) < 250
