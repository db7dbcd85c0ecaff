import pytest

from kestra_trio.engine.retry import RetryDecision, backoff_delay, decide
from kestra_trio.model.workflow import RetryPolicy
from kestra_trio.state.states import Reason


@pytest.mark.parametrize(
    ("policy", "attempt", "expected"),
    [
        (RetryPolicy(3, "constant", 2.0), 1, 2.0),
        (RetryPolicy(3, "constant", 2.0), 2, 2.0),
        (RetryPolicy(5, "exponential", 0.5), 1, 0.5),
        (RetryPolicy(5, "exponential", 0.5), 2, 1.0),
        (RetryPolicy(5, "exponential", 0.5), 4, 4.0),
        (RetryPolicy(5, "exponential", 0.5, max_delay=1.5), 4, 1.5),
        # attempt 1025 used to overflow float (2**1024) even with max_delay set
        (RetryPolicy(2000, "exponential", 0.001, max_delay=0.001), 1025, 0.001),
        (RetryPolicy(100_000, "exponential", 1.0, max_delay=60.0), 99_999, 60.0),
        (RetryPolicy(100_000, "exponential", 1.0), 99_999, 10 * 365 * 86400.0),  # bounded like any duration
    ],
)
def test_backoff_delays(policy, attempt, expected):
    assert backoff_delay(policy, attempt) == expected


def test_retry_max_is_the_total_number_of_attempts():
    policy = RetryPolicy(3, "constant", 1.0)
    assert decide(policy, 1, Reason.PLUGIN_FAILED).next_attempt == 2
    assert decide(policy, 2, Reason.TIMEOUT).next_attempt == 3
    assert decide(policy, 3, Reason.PLUGIN_FAILED) is None


@pytest.mark.parametrize(
    "reason", [Reason.TEMPLATE_ERROR, Reason.INVALID_INPUT, Reason.UNKNOWN_PLUGIN, Reason.PLUGIN_NOT_STARTED]
)
def test_failures_another_attempt_cannot_fix_are_not_retried(reason):
    assert decide(RetryPolicy(5), 1, reason) is None


@pytest.mark.parametrize("reason", [Reason.PLUGIN_FAILED, Reason.PLUGIN_CRASHED, Reason.INVALID_RESULT, Reason.TIMEOUT])
def test_failures_another_attempt_may_fix_are_retried(reason):
    assert decide(RetryPolicy(5, "constant", 1.0), 1, reason) == RetryDecision(2, 1.0)
