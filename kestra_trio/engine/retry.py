"""Pure retry policy: whether to try again and after how long."""

from __future__ import annotations

from dataclasses import dataclass

from kestra_trio.model.durations import MAX_SECONDS
from kestra_trio.model.workflow import RetryPolicy
from kestra_trio.state.states import Reason

#: failures that another attempt cannot fix
NOT_RETRYABLE = frozenset(
    {Reason.TEMPLATE_ERROR, Reason.INVALID_INPUT, Reason.UNKNOWN_PLUGIN, Reason.PLUGIN_NOT_STARTED}
)


@dataclass(frozen=True)
class RetryDecision:
    next_attempt: int
    delay: float


def backoff_delay(policy: RetryPolicy, failed_attempt: int) -> float:
    """Delay after attempt `failed_attempt` (1-based): constant, or delay * 2**(n-1) capped by max_delay."""
    if policy.backoff == "exponential":
        # 2**64 ms is already 584 million years: a larger exponent only risks float overflow
        delay = policy.delay * (2 ** min(failed_attempt - 1, 64))
    else:
        delay = policy.delay
    if policy.max_delay is not None:
        delay = min(delay, policy.max_delay)
    return max(0.0, min(delay, MAX_SECONDS))


def decide(policy: RetryPolicy, failed_attempt: int, reason: str) -> RetryDecision | None:
    if reason in NOT_RETRYABLE or failed_attempt >= policy.max_attempts:
        return None
    return RetryDecision(failed_attempt + 1, backoff_delay(policy, failed_attempt))
