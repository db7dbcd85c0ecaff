"""The harness's runtime seam: mocked tasks, `core/util.sleep` in virtual time, and real time
for every real plugin process (`ServiceConfig.wrap_runtimes`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from kestra_trio.engine.context import RunContext, RuntimeChooser
from kestra_trio.observability.records import LogEntry, LogLevel
from kestra_trio.plugin_runtime.process import schema_problems
from kestra_trio.plugin_runtime.runtime import Invocation, Outcome, ProcessHandle, Runtime
from kestra_trio.state.states import Reason
from kestra_trio.testing.clock import TimeSkipping

#: a task of this type sleeps on trio's clock under time skipping instead of in a process
VIRTUAL_SLEEP_TYPE = "core/util.sleep"
MOCK_KEYS = frozenset({"outputs", "fail", "duration"})


class MockInvalid(ValueError):
    """A `mocks=` entry the harness cannot use (unknown task, wrong shape, outputs off schema)."""


@dataclass(frozen=True)
class MockedAttempt:
    """What one attempt of a mocked task does: return `outputs`, or fail with `fail`, after `duration` s."""

    outputs: dict[str, Any] | None = None
    fail: str | None = None
    duration: float = 0.0

    @classmethod
    def parse(cls, task_id: str, spec: Any) -> MockedAttempt:
        if not isinstance(spec, Mapping) or not spec or set(spec) - MOCK_KEYS:
            raise MockInvalid(
                f"mock of {task_id!r}: expected {{'outputs': {{...}}}} or {{'fail': 'message'}} "
                f"(optionally with 'duration': seconds), got {spec!r}"
            )
        if ("outputs" in spec) == ("fail" in spec):
            raise MockInvalid(f"mock of {task_id!r}: give exactly one of 'outputs' and 'fail', got {sorted(spec)}")
        outputs, fail, duration = spec.get("outputs"), spec.get("fail"), spec.get("duration", 0)
        if "outputs" in spec and not isinstance(outputs, Mapping):
            raise MockInvalid(f"mock of {task_id!r}: 'outputs' must be a mapping, got {outputs!r}")
        if "fail" in spec and not isinstance(fail, str):
            raise MockInvalid(f"mock of {task_id!r}: 'fail' must be a message (text), got {fail!r}")
        if isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 <= duration < float("inf"):
            raise MockInvalid(f"mock of {task_id!r}: 'duration' must be seconds (a number >= 0), got {duration!r}")
        return cls(dict(outputs) if outputs is not None else None, fail, float(duration))


@dataclass(frozen=True)
class MockedTask:
    """One attempt spec per attempt; the last one repeats (`[{'fail': ...}, {'outputs': ...}]`:
    the first attempt fails, every later one succeeds)."""

    attempts: tuple[MockedAttempt, ...]

    def for_attempt(self, number: int) -> MockedAttempt:
        return self.attempts[min(number, len(self.attempts)) - 1]


def parse_mocks(mocks: Mapping[str, Any], task_types: Mapping[str, str], registry: Any) -> dict[str, MockedTask]:
    """`mocks=` as the user wrote it → task id → MockedTask, each output checked against the
    action's output schema (a mock the real plugin could never return would prove nothing)."""
    __tracebackhide__ = True  # a bad workflow or mock: pytest shows the test's line
    parsed: dict[str, MockedTask] = {}
    for task_id, spec in mocks.items():
        if task_id not in task_types:
            raise MockInvalid(f"mock of {task_id!r}: the workflow has no such task; its tasks: {', '.join(task_types)}")
        specs: Sequence[Any] = spec if isinstance(spec, list | tuple) else [spec]
        if not specs:
            raise MockInvalid(f"mock of {task_id!r}: an empty list of attempts")
        attempts = tuple(MockedAttempt.parse(task_id, s) for s in specs)
        _, action = registry.resolve(task_types[task_id])
        for attempt in attempts:
            problems = schema_problems(action, "output", attempt.outputs) if attempt.outputs is not None else []
            if problems:
                raise MockInvalid(
                    f"mock of {task_id!r}: outputs do not match the output schema of {task_types[task_id]}: "
                    + "; ".join(problems)
                )
        parsed[task_id] = MockedTask(attempts)
    return parsed


class HarnessRuntimes:
    """Wraps the service's runtime chooser; `mocks[execution id][task id]` replaces a task's process."""

    def __init__(self, inner: RuntimeChooser, time: TimeSkipping) -> None:
        self.inner = inner
        self.time = time
        self.mocks: dict[str, dict[str, MockedTask]] = {}

    def __call__(self, run: RunContext, policy: Any) -> Runtime:
        return _HarnessRuntime(self, run, policy)


class _HarnessRuntime:
    def __init__(self, owner: HarnessRuntimes, run: RunContext, policy: Any) -> None:
        self.owner = owner
        self.run = run
        self.policy = policy

    async def run_action(
        self,
        invocation: Invocation,
        *,
        log_send: trio.MemorySendChannel[LogEntry],
        task_status: trio.TaskStatus[ProcessHandle] = trio.TASK_STATUS_IGNORED,
    ) -> Outcome:
        mocked = self.owner.mocks.get(invocation.execution_id, {}).get(invocation.task_id)
        if mocked is not None:
            return await _run_mock(invocation, mocked.for_attempt(invocation.attempt), log_send)
        if invocation.task_type == VIRTUAL_SLEEP_TYPE and self.owner.time.active:
            return await _virtual_sleep(invocation, log_send)
        with self.owner.time.real_time():  # a real process: its timeout must not fire in skipped time
            real = self.owner.inner(self.run, self.policy)
            return await real.run_action(invocation, log_send=log_send, task_status=task_status)


def _invalid_input(invocation: Invocation) -> Outcome | None:
    problems = schema_problems(invocation.action, "input", invocation.inputs)
    if not problems:
        return None
    return Outcome.failure(
        Reason.INVALID_INPUT,
        f"inputs do not match the input schema of {invocation.task_type}: " + "; ".join(problems),
        type="InvalidInput",
    )


async def _note(invocation: Invocation, log_send: trio.MemorySendChannel[LogEntry], message: str, **metadata: Any) -> None:
    await log_send.send(
        LogEntry(invocation.execution_id, invocation.task_id, LogLevel.DEBUG, "test", message,
                 {"attempt": invocation.attempt, **metadata})
    )


async def _run_mock(
    invocation: Invocation, mock: MockedAttempt, log_send: trio.MemorySendChannel[LogEntry]
) -> Outcome:
    """The mocked task still gets its inputs rendered and checked; then the mock's outcome."""
    invalid = _invalid_input(invocation)
    if invalid is not None:
        return invalid
    await trio.sleep(mock.duration)
    if mock.fail is not None:
        await _note(invocation, log_send, f"mocked {invocation.task_type}: fails with {mock.fail!r}")
        return Outcome.failure(Reason.PLUGIN_FAILED, mock.fail, type="MockedFailure", exit_code=1)
    await _note(invocation, log_send, f"mocked {invocation.task_type}: returns its mocked outputs")
    return Outcome.success(dict(mock.outputs or {}))


async def _virtual_sleep(invocation: Invocation, log_send: trio.MemorySendChannel[LogEntry]) -> Outcome:
    invalid = _invalid_input(invocation)
    if invalid is not None:
        return invalid
    seconds = float(invocation.inputs["seconds"])
    await _note(invocation, log_send, f"core/util.sleep: {seconds:g} s on the test's clock (time skipping)", seconds=seconds)
    await trio.sleep(seconds)
    return Outcome.success({"slept": seconds})
