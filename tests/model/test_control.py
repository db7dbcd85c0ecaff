"""The pure rules the scheduler applies: run_if values, for_each lists, the needs verdict
(SKIPPED counts as done unless its outputs are used), and the operator's defaults."""

from __future__ import annotations

import pytest

from kestra_trio.errors import ConfigError
from kestra_trio.model.control import condition_holds, for_each_items, iteration_id
from kestra_trio.model.dag import Dag, Upstream, Verdict, VerdictKind, classify_upstream
from kestra_trio.model.defaults import default_task_timeout, for_each_max_items
from kestra_trio.model.flow_checks import label_problem
from kestra_trio.model.templates import TemplateError
from kestra_trio.model.workflow import CronTrigger, ForEach, SubflowCall, TaskSpec, WebhookTrigger, subflow_call


@pytest.mark.parametrize(("value", "holds"), [(True, True), (False, False), ("true", True), (" False\n", False), ("TRUE", True)])
def test_condition_values(value: object, holds: bool) -> None:
    assert condition_holds(value) is holds


@pytest.mark.parametrize("value", ["yes", "", 0, 1, None, [], "1"])
def test_a_condition_that_is_not_a_boolean_is_an_error(value: object) -> None:
    with pytest.raises(TemplateError, match="run_if must give true or false"):
        condition_holds(value)


def test_for_each_items() -> None:
    assert for_each_items([1, {"a": 2}], 10) == [1, {"a": 2}]
    assert for_each_items((), 10) == []  # an empty list: SUCCESS with no iterations
    with pytest.raises(TemplateError, match="for_each must give a list, got a mapping"):
        for_each_items({"a": 1}, 10)
    with pytest.raises(TemplateError, match="for_each gave 11 items; at most 10 may run .set KESTRA_TRIO_FOR_EACH_MAX_ITEMS"):
        for_each_items(list(range(11)), 10)
    assert iteration_id("each", 3) == "each[3]"


def task(task_id: str, needs: tuple[str, ...] = (), **fields: object) -> TaskSpec:
    return TaskSpec(id=task_id, type="core/log.message", needs=needs, **fields)  # type: ignore[arg-type]


DAG = Dag([
    task("check"),
    task("deploy", ("check",), run_if="{{ inputs.env == 'prod' }}"),
    task("announce", ("deploy",), inputs={"message": "done"}),
    task("report", ("deploy",), inputs={"message": "url: {{ tasks.deploy.outputs.url }}"}),
    task("fallback", ("deploy",), inputs={"message": "{{ tasks.deploy.outputs.url | default('none') }}"}),
    task("later", ("report",), inputs={"message": "{{ tasks.deploy.outputs.url }}"}),
    task("loop", ("check",), for_each=ForEach("{{ tasks.check.outputs.items }}")),
])  # fmt: skip


def test_a_skipped_need_counts_as_done_unless_its_outputs_are_used() -> None:
    skipped = {"check": Upstream.DONE, "deploy": classify_upstream("SKIPPED")}
    assert DAG.verdict("announce", skipped) == Verdict(VerdictKind.RUN)
    assert DAG.verdict("report", skipped) == Verdict(VerdictKind.SKIP, "deploy")
    assert DAG.verdict("fallback", skipped).kind is VerdictKind.RUN  # `| default` tolerates it
    assert DAG.uses_outputs_of("later") == {"deploy"}  # transitive: it needs report, reads deploy
    assert DAG.verdict("later", {**skipped, "report": classify_upstream("SKIPPED")}) == Verdict(VerdictKind.SKIP, "deploy")
    assert DAG.uses_outputs_of("loop") == {"check"}  # for_each counts as a use
    assert "skipped" in DAG.verdict("report", skipped).message


def test_an_allowed_failure_has_no_outputs_and_a_failure_blocks() -> None:
    allowed = {"check": Upstream.DONE, "deploy": classify_upstream("FAILED", allow_failure=True)}
    assert DAG.verdict("announce", allowed).kind is VerdictKind.RUN
    assert DAG.verdict("report", allowed) == Verdict(VerdictKind.SKIP, "deploy")
    for state in ("FAILED", "CANCELLED"):
        blocked = {"check": Upstream.DONE, "deploy": classify_upstream(state)}
        assert DAG.verdict("announce", blocked) == Verdict(VerdictKind.BLOCK, "deploy")
    assert classify_upstream("RUNNING") is None and classify_upstream("SUCCESS") is Upstream.DONE


def test_default_task_timeout_from_the_environment() -> None:
    assert default_task_timeout({}) is None  # no default: a two-hour job is not killed
    assert default_task_timeout({"KESTRA_TRIO_DEFAULT_TASK_TIMEOUT": " 1h30m "}) == 5400.0
    for bad in ("soon", "0", "-5s"):
        with pytest.raises(ConfigError, match="KESTRA_TRIO_DEFAULT_TASK_TIMEOUT must be"):
            default_task_timeout({"KESTRA_TRIO_DEFAULT_TASK_TIMEOUT": bad})


def test_for_each_limit_from_the_environment() -> None:
    assert for_each_max_items({}) == 10_000
    assert for_each_max_items({"KESTRA_TRIO_FOR_EACH_MAX_ITEMS": "50"}) == 50
    for bad in ("many", "0", "2000000"):
        with pytest.raises(ConfigError, match="KESTRA_TRIO_FOR_EACH_MAX_ITEMS must be"):
            for_each_max_items({"KESTRA_TRIO_FOR_EACH_MAX_ITEMS": bad})


def test_labels_shared_by_yaml_and_the_command_line() -> None:
    assert label_problem("team", "data") is None and label_problem("app.k8s.io/name", "x") is None
    assert "must be text" in str(label_problem("tier", 1))
    assert "1-63 letters" in str(label_problem("-x", "y"))
    assert "at most 256" in str(label_problem("k", "v" * 300))
    assert "control characters" in str(label_problem("k", "a\x1bb"))


def test_small_model_helpers() -> None:
    assert CronTrigger("n", "@Daily").expression == "0 0 * * *" and CronTrigger("n", "*/5 * * * *").expression == "*/5 * * * *"
    assert WebhookTrigger("h", "{{ secrets.HOOK }}").key_secret == "HOOK" and WebhookTrigger("h", "x" * 16).key_secret is None
    call = subflow_call({"workflow": "child.yaml", "inputs": {"n": 1}})
    assert call == SubflowCall("child.yaml", {"n": 1}, True) and call.is_path and not SubflowCall("child").is_path
