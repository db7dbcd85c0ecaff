"""Testing retries and timeouts without waiting: `autojump_clock` skips the engine's waits
(backoffs, timeouts, core/util.sleep) while plugin processes still run for real."""

from pathlib import Path

import trio

WORKFLOWS = Path(__file__).parent / "workflows"


async def test_five_retries_ten_minutes_apart(kt, autojump_clock):
    began = trio.current_time()
    result = await kt.run(WORKFLOWS / "flaky_api.yaml")  # the API never comes back

    result.assert_states(call="FAILED")
    call = result.task("call")
    assert [a.state for a in call.attempts] == ["FAILED"] * 6  # six real processes
    gaps = [later.started_at - earlier.ended_at for earlier, later in zip(call.attempts, call.attempts[1:])]
    assert all(600_000 <= gap < 601_000 for gap in gaps), gaps  # 10 minutes each, as recorded
    assert trio.current_time() - began >= 50 * 60  # 50 minutes passed on the test's clock


async def test_the_api_comes_back_on_the_fourth_attempt(kt, autojump_clock):
    result = await kt.run(WORKFLOWS / "flaky_api.yaml", inputs={"up_from_attempt": 4})

    result.assert_succeeded()
    assert result.task("call").attempt_count == 4
    assert [e.message for e in result.logs("call", level="WARN", source="plugin")] == ["503 Service Unavailable"] * 3


async def test_a_hanging_partner_times_out_after_ten_minutes(kt, autojump_clock):
    result = await kt.run(WORKFLOWS / "slow_step.yaml", inputs={"partner_seconds": 3 * 3600})

    result.assert_states({"wait-for-partner": "FAILED", "after": "CANCELLED"})
    assert result.task("wait-for-partner").reason_code == "TIMEOUT"
    [timeout] = [e for e in result.audit if e.event_type == "TIMEOUT"]
    assert timeout.metadata["scope"] == "task"
    assert timeout.metadata["timeout_duration"] == "10m"


async def test_a_partner_answering_in_nine_minutes_is_in_time(kt, autojump_clock):
    result = await kt.run(WORKFLOWS / "slow_step.yaml", inputs={"partner_seconds": 9 * 60})

    result.assert_succeeded()
    assert result.task("wait-for-partner").duration_ms >= 9 * 60 * 1000


async def test_a_mocked_call_that_takes_too_long(kt, autojump_clock):
    # `duration`: the mocked task takes that long on the test's clock
    workflow = {
        "id": "deadline",
        "namespace": "examples",
        "timeout": "30m",
        "tasks": [{"id": "export", "type": "core/http.request", "inputs": {"url": "https://example.com/export"}}],
    }
    result = await kt.run(workflow, mocks={"export": {"outputs": {"status": 200, "headers": {}, "body": ""}, "duration": 3600}})

    assert (result.state, result.reason_code) == ("FAILED", "TIMEOUT")
    result.assert_states(export="CANCELLED")
