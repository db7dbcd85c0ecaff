"""Testing a workflow: run it for real, mock the tasks that call the outside world."""

import json
from pathlib import Path

WORKFLOWS = Path(__file__).parent / "workflows"

SALES = {"outputs": {"status": 200, "headers": {}, "body": {"orders": 42}}}
POSTED = {"outputs": {"status": 204, "headers": {}, "body": ""}}
REPORT = {"inputs": {"day": "2026-12-01"}, "secrets": {"API_TOKEN": "s3cr3t-token"}}


async def test_the_report_summarises_the_api_numbers(kt):
    result = await kt.run(
        WORKFLOWS / "daily_report.yaml",
        inputs={"day": "2026-12-01"},
        secrets={"API_TOKEN": "s3cr3t-token"},
        mocks={"fetch": SALES, "post": POSTED},
    )
    result.assert_succeeded()
    # `summarise` ran for real (a Python process) on the mocked API answer
    assert result.task("summarise").outputs == {"line": "2026-12-01: 42 orders"}
    assert [e.message for e in result.logs("summarise", source="plugin")] == ["summarising 42 orders"]
    # a mocked task still gets its inputs rendered (and checked against its plugin's schema)
    assert result.task("post").inputs["body"] == {"text": "2026-12-01: 42 orders"}


async def test_the_api_token_is_masked_everywhere(kt):
    result = await kt.run(WORKFLOWS / "daily_report.yaml", **REPORT, mocks={"fetch": SALES, "post": POSTED})
    assert result.task("fetch").inputs["headers"]["Authorization"] == "Bearer ***SECRET***"
    everything = json.dumps(result.document()) + json.dumps([e.message for e in result.logs()])
    assert "s3cr3t-token" not in everything


async def test_an_api_outage_fails_the_report_and_posts_nothing(kt, autojump_clock):
    result = await kt.run(
        WORKFLOWS / "daily_report.yaml",
        inputs={"day": "2026-12-01"},
        secrets={"API_TOKEN": "s3cr3t-token"},
        mocks={"fetch": {"fail": "HTTP 503 from api.example.com"}, "post": POSTED},
    )
    assert result.state == "FAILED"
    result.assert_states(fetch="FAILED", summarise="CANCELLED", post="CANCELLED")
    fetch = result.task("fetch")
    assert fetch.attempt_count == 3  # retry: {max: 3}
    assert fetch.error["message"] == "HTTP 503 from api.example.com"
    assert [event.event_type for event in result.audit].count("RETRY") == 2


async def test_the_api_answers_on_the_third_attempt(kt, autojump_clock):
    # one mock per attempt: two failures, then the answer (the last one repeats)
    result = await kt.run(
        WORKFLOWS / "daily_report.yaml", **REPORT, mocks={"fetch": [{"fail": "timeout"}, {"fail": "timeout"}, SALES], "post": POSTED}
    )
    result.assert_succeeded()
    assert [a.state for a in result.task("fetch").attempts] == ["FAILED", "FAILED", "SUCCESS"]


async def test_a_workflow_written_in_the_test(kt):
    result = await kt.run(
        {
            "id": "inline",
            "namespace": "examples",
            "tasks": [
                {"id": "hello", "type": "core/log.message", "inputs": {"message": "hello {{ inputs.who }}"}},
            ],
            "inputs": [{"name": "who", "type": "string"}],
        },
        inputs={"who": "tests"},
    )
    result.assert_succeeded()
    assert result.logs("hello", source="plugin")[0].message == "hello tests"
