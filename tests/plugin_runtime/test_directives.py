"""`::{"outputs": ...}::` / `::{"metrics": ...}::` stdout lines: parsing, merging, the cap."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kestra_trio.plugin_runtime.directives import (
    MAX_DIRECTIVE_BYTES,
    Directive,
    Malformed,
    Reported,
    is_candidate,
    parse_directive,
)
from kestra_trio.plugin_runtime.streams import LineSplitter


def test_outputs_and_metrics_are_read():
    parsed = parse_directive('  ::{"outputs": {"n": 2}, "metrics": {"name": "rows", "value": 3, "tags": {"t": "x"}}}::')
    assert isinstance(parsed, Directive)
    assert parsed.outputs == {"n": 2}
    assert [(m.name, m.value, m.tags) for m in parsed.metrics] == [("rows", 3.0, {"t": "x"})]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('::{"outputs": {"n": 2}}', "does not end with }::"),
        ("::{not json}::", "not valid JSON"),
        ('::{"output": {}}::', "unknown key 'output'"),
        ('::{"outputs": [1]}::', '"outputs" must be a JSON object, got a list'),
        ('::{"metrics": [{"name": "x", "value": "1"}]}::', 'metrics[0]: metric \'x\': "value" must be a number'),
        ('::{"metrics": [{"name": "x", "value": 1, "type": "histogram"}]}::', '"type" must be one of counter'),
        ("::{}::", "empty object"),
    ],
)
def test_what_cannot_be_read_says_why(line, reason):
    parsed = parse_directive(line)
    assert isinstance(parsed, Malformed) and reason in parsed.reason


def test_only_lines_starting_with_the_marker_are_candidates():
    assert is_candidate('::{"outputs": {}}::') and is_candidate('\t ::{"x"')
    assert not is_candidate('echo ::{"outputs": {}}::') and not is_candidate("::")


def test_later_lines_win_key_by_key_and_the_cap_fails_the_attempt():
    reported = Reported()
    reported.add(parse_directive('::{"outputs": {"a": 1, "b": 1}}::'))
    reported.add(parse_directive('::{"outputs": {"b": 2}}::'))
    assert reported.outputs == {"a": 1, "b": 2} and reported.problem is None
    big = "::" + json.dumps({"outputs": {"x": "y" * (MAX_DIRECTIVE_BYTES // 2)}}) + "::"
    reported.add(parse_directive(big))
    reported.add(parse_directive(big))
    assert reported.outputs == {} and "larger than 16 MiB in all" in reported.problem


def test_a_directive_line_may_be_longer_than_a_log_line_but_not_than_the_cap():
    splitter = LineSplitter(max_line=100, max_directive=1000)
    long_directive = b"::" + json.dumps({"outputs": {"x": "y" * 500}}).encode() + b"::\n"
    long_log = b"z" * 500 + b"\n"
    lines = splitter.feed(long_directive + long_log)
    assert lines[0] == long_directive[:-1].decode()
    assert lines[1].startswith("z" * 100) and "line truncated" in lines[1]
    too_long = splitter.feed(b"::{" + b"y" * 2000 + b"\n")[0]
    assert isinstance(parse_directive(too_long), Malformed) and parse_directive(too_long).too_long


@settings(max_examples=200)
@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=10) | st.booleans(), max_size=5))
def test_any_json_object_round_trips_as_outputs(outputs):
    parsed = parse_directive("::" + json.dumps({"outputs": outputs}) + "::")
    assert isinstance(parsed, Directive) and parsed.outputs == outputs
