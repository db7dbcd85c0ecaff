"""Failure messages of the assertion helpers: expected vs actual as a table, and why."""

from __future__ import annotations

import pytest

from kestra_trio.testing.assertions import table

pytestmark = pytest.mark.slow  # runs workflows in real child processes

REPORT = {
    "id": "report",
    "namespace": "tests",
    "tasks": [
        {"id": "fetch", "type": "core/http.request", "retry": {"max": 3, "delay": "1m"}, "inputs": {"url": "https://api.test"}},
        {"id": "render", "type": "core/log.message", "needs": ["fetch"], "inputs": {"message": "x"}},
        {"id": "audit", "type": "core/log.message", "inputs": {"message": "audited"}},
    ],
}


def test_table_pads_every_column_but_the_last() -> None:
    assert table(["a", "bb", "c"], [["xxx", "y", "long last cell"]]) == [
        "  a    bb  c",
        "  xxx  y   long last cell",
    ]


async def test_assert_states_shows_expected_against_actual(kt, autojump_clock) -> None:
    result = await kt.run(REPORT, mocks={"fetch": {"fail": "HTTP 503 from https://api.test"}})
    result.assert_states(fetch="FAILED", audit="SUCCESS")  # passes: nothing raised
    with pytest.raises(AssertionError) as caught:
        result.assert_states(fetch="SUCCESS", render="SUCCESS", audit="success", publish="SUCCESS")
    lines = str(caught.value).splitlines()
    assert lines[:9] == [
        "task states differ from what the test expected (3 of 4)",
        f"execution {result.id} of report: FAILED [TASK_FAILED]",
        "",
        "     task     expected  actual          attempts  reason: error",
        "  ✗  fetch    SUCCESS   FAILED          3/3       PLUGIN_FAILED: HTTP 503 from https://api.test",
        "  ✗  render   SUCCESS   CANCELLED       0/1       UPSTREAM_FAILED: upstream task 'fetch' failed",
        "  ✓  audit    SUCCESS   SUCCESS         1/1",
        "  ✗  publish  SUCCESS   (no such task)",
        "",
    ]
    assert "  the workflow has no task 'publish'; its tasks: fetch, render, audit" in lines
    tail = lines[lines.index("last log lines of the tasks that differ:") + 1:]
    assert tail[0].split() == ["task", "level", "source", "message"]
    assert tail[-1].split()[:3] == ["render", "WARN", "worker"]


async def test_assert_succeeded_lists_every_task_and_why(kt, autojump_clock) -> None:
    result = await kt.run(REPORT, mocks={"fetch": {"fail": "HTTP 503 from https://api.test"}})
    with pytest.raises(AssertionError) as caught:
        result.assert_succeeded()
    lines = str(caught.value).splitlines()
    assert lines[:7] == [
        "the execution did not succeed",
        f"execution {result.id} of report: FAILED [TASK_FAILED]",
        "",
        "     task    state      attempts  reason: error",
        "  ✗  fetch   FAILED     3/3       PLUGIN_FAILED: HTTP 503 from https://api.test",
        "  ✗  render  CANCELLED  0/1       UPSTREAM_FAILED: upstream task 'fetch' failed",
        "  ✓  audit   SUCCESS    1/1",
    ]


async def test_assert_ok_shows_the_error_stderr_and_log(kt) -> None:
    ok = await kt.action("core/shell.run", {"command": "echo fine"})
    ok.assert_ok()
    failed = await kt.action("core/shell.run", {"command": "echo working; echo 'Traceback: boom' >&2; exit 4"})
    with pytest.raises(AssertionError) as caught:
        failed.assert_ok()
    lines = str(caught.value).splitlines()
    assert lines[:6] == [
        "action core/shell.run failed [PLUGIN_FAILED], exit code 4",
        "  error: command exited with code 4",
        "  stderr (last lines):",
        "    Traceback: boom",
        "  last log lines:",
        "    level  source                 message",
    ]
    # (stdout and stderr are two pipes: their lines may arrive in either order)
    assert sorted(lines[6:]) == [
        "    INFO   plugin:core/shell.run  working",
        "    WARN   plugin:core/shell.run  Traceback: boom",
    ]
