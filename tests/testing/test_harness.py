"""The `kt` harness itself: lazy plugin, time skipping rules, mocks, secrets, clean exit."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import trio
import trio.testing

from kestra_trio.observability import records
from kestra_trio.testing import MockInvalid, open_harness

pytestmark = pytest.mark.slow  # runs workflows in real child processes


def _workflow(*tasks: dict, **extra: object) -> dict:
    return {"id": "t", "namespace": "tests", "tasks": list(tasks), **extra}


def test_the_pytest_plugin_is_registered_and_imports_nothing_heavy() -> None:
    code = (
        "import importlib.metadata as m, sys\n"
        "[ep] = [e for e in m.entry_points(group='pytest11') if e.name == 'kestra_trio']\n"
        "ep.load()\n"
        "print(ep.value)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('kestra_trio', 'trio', 'sqlite_anyio', 'jsonschema', 'yaml')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "kestra_trio.testing.plugin"
    assert json.loads(out[1].replace("'", '"')) == [
        "kestra_trio", "kestra_trio.errors", "kestra_trio.testing", "kestra_trio.testing.plugin",
    ]


async def test_time_does_not_skip_while_a_real_process_runs(kt, autojump_clock) -> None:
    # the 1-hour sleep skips; the 0.3 s process beside it gets real time, so its 2 s timeout
    # never fires even though the clock jumps an hour around it
    began = trio.current_time()
    result = await kt.run(_workflow(
        {"id": "nap", "type": "core/util.sleep", "inputs": {"seconds": 3600}},
        {"id": "work", "type": "core/shell.run", "timeout": "2s", "inputs": {"command": "sleep 0.3; echo done"}},
    ))
    result.assert_states(nap="SUCCESS", work="SUCCESS")
    assert trio.current_time() - began >= 3600
    assert result.task("work").duration_ms < 2000


async def test_a_real_process_that_hangs_times_out_in_real_time(kt, autojump_clock) -> None:
    wall = time.monotonic()
    result = await kt.run(_workflow(
        {"id": "hang", "type": "core/shell.run", "timeout": "500ms", "inputs": {"command": "sleep 30"}},
    ))
    assert (result.task("hang").state, result.task("hang").reason_code) == ("FAILED", "TIMEOUT")
    assert time.monotonic() - wall < 10  # killed at its timeout, not after its 30 s


async def test_without_a_mock_clock_everything_runs_in_real_time(kt) -> None:
    result = await kt.run(_workflow(
        {"id": "nap", "type": "core/util.sleep", "inputs": {"seconds": 0.2}},
        {"id": "flaky", "type": "core/shell.run", "retry": {"max": 2, "delay": "100ms"}, "inputs": {"command": "exit 1"}},
    ))
    result.assert_states(nap="SUCCESS", flaky="FAILED")
    # a real core/util.sleep process wrote no "time skipping" note
    assert result.logs("nap", source="test") == []
    attempts = result.task("flaky").attempts
    assert attempts[1].started_at - attempts[0].ended_at >= 100


async def test_recorded_timestamps_follow_the_test_clock_only_inside_the_harness(tmp_path) -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def scenario() -> None:
        async with open_harness(tmp_path) as kt:
            result = await kt.run(_workflow({"id": "nap", "type": "core/util.sleep", "inputs": {"seconds": 86400}}))
            assert result.task("nap").duration_ms >= 86_400_000
            assert clock.rate == 0 and clock.autojump_threshold == 0  # skipping again between runs
        assert abs(records.now_ms() - time.time_ns() // 1_000_000) < 5_000

    await trio.to_thread.run_sync(lambda: trio.run(scenario, clock=clock))


@pytest.mark.parametrize(
    ("mocks", "message"),
    [
        ({"nope": {"outputs": {}}}, "mock of 'nope': the workflow has no such task; its tasks: get"),
        ({"get": {"outputs": {}, "fail": "x"}}, "give exactly one of 'outputs' and 'fail'"),
        ({"get": {"output": {}}}, "expected {'outputs': {...}} or {'fail': 'message'}"),
        ({"get": {"fail": "x", "duration": -1}}, "'duration' must be seconds"),
        ({"get": []}, "an empty list of attempts"),
        ({"get": {"outputs": {"status": "200"}}}, "outputs do not match the output schema of core/http.request"),
    ],
)
async def test_a_mock_the_plugin_could_not_produce_is_refused(kt, mocks, message) -> None:
    with pytest.raises(MockInvalid, match=".*".join(map(__import__("re").escape, message.split("...")))):
        await kt.run(_workflow({"id": "get", "type": "core/http.request", "inputs": {"url": "https://x.test"}}), mocks=mocks)


async def test_a_mocked_task_still_gets_its_inputs_checked(kt) -> None:
    result = await kt.run(
        _workflow(
            {"id": "get", "type": "core/http.request", "inputs": {"url": "{{ inputs.url }}"}},
            inputs=[{"name": "url", "type": "string"}],
        ),
        inputs={"url": "ftp://x.test"},  # rendered at run time, then refused by the plugin's input schema
        mocks={"get": {"outputs": {"status": 200, "headers": {}, "body": ""}}},
    )
    assert result.task("get").reason_code == "INVALID_INPUT"


async def test_secrets_belong_to_one_run_and_the_developers_are_never_seen(kt, monkeypatch) -> None:
    monkeypatch.setenv("KESTRA_TRIO_SECRET_HOME_TOKEN", "from-my-shell")
    uses = _workflow(
        {"id": "say", "type": "core/log.message", "inputs": {"message": "{{ secrets.TOKEN }} {{ secrets.HOME_TOKEN }}"}},
    )
    first = await kt.run(uses, secrets={"TOKEN": "t-1", "HOME_TOKEN": "t-2"})
    first.assert_succeeded()
    assert first.logs("say", source="plugin")[0].message == "***SECRET*** ***SECRET***"
    second = await kt.run(uses)  # no secrets given: none known
    assert second.task("say").reason_code == "TEMPLATE_ERROR"


async def test_logs_filters_and_unknown_tasks(kt) -> None:
    result = await kt.run(_workflow({"id": "say", "type": "core/log.message", "inputs": {"message": "hi"}}))
    assert {e.source for e in result.logs(source="plugin")} == {"plugin:core/log.message"}
    assert all(e.level in ("WARN", "ERROR") for e in result.logs(level="warn"))
    assert result.logs(level="ERROR") == []
    with pytest.raises(KeyError, match="no task 'sya'.*its tasks: say"):
        result.logs("sya")
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        result.logs(level="LOUD")


async def test_a_result_is_what_inspect_reads(kt) -> None:
    result = await kt.run(_workflow({"id": "say", "type": "core/log.message", "inputs": {"message": "hi"}}))
    document = result.document()
    assert document["execution"]["id"] == result.id
    assert document["execution"]["state"] == result.state == "SUCCESS"
    assert [t["task_id"] for t in document["tasks"]] == ["say"]
    assert [e["event_type"] for e in document["audit_events"]] == [e.event_type for e in result.audit]
    assert (await kt.result(result.id)).states == result.states
