"""Execution and task-run states, and the reason codes that explain each change."""

from __future__ import annotations

import enum


class State(enum.StrEnum):
    """One state set for executions and task runs (Kestra's names)."""

    QUEUED = "QUEUED"  # an execution waiting in the queue for a worker to claim it
    PENDING = "PENDING"  # created, not started
    RUNNING = "RUNNING"  # an attempt is running (or the execution is)
    WAITING = "WAITING"  # blocked: see the reason (DEPENDENCY, BACKOFF)
    SUCCESS = "SUCCESS"  # finished well; terminal
    FAILED = "FAILED"  # finished badly; terminal
    CANCELLED = "CANCELLED"  # stopped before finishing; terminal
    SKIPPED = "SKIPPED"  # a task that did not run: its run_if was false, or outputs it needs do not exist; terminal

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL: frozenset[State] = frozenset({State.SUCCESS, State.FAILED, State.CANCELLED, State.SKIPPED})
#: states only a task run can be in, never an execution
TASK_ONLY: frozenset[State] = frozenset({State.SKIPPED})


class AttemptState(enum.StrEnum):
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    CANCELLED = "CANCELLED"


class Reason(enum.StrEnum):
    """Machine-readable reason codes stored with every state change."""

    CREATED = "CREATED"
    STARTED = "STARTED"
    DEPENDENCY = "DEPENDENCY"  # WAITING for upstream tasks
    BACKOFF = "BACKOFF"  # WAITING between attempts
    COMPLETED = "COMPLETED"
    TASK_FAILED = "TASK_FAILED"  # execution failed because a task failed
    PLUGIN_FAILED = "PLUGIN_FAILED"  # plugin exited non-zero or reported an error
    PLUGIN_CRASHED = "PLUGIN_CRASHED"  # killed by a signal it did not get from us
    PLUGIN_NOT_STARTED = "PLUGIN_NOT_STARTED"  # OS error starting it
    INVALID_RESULT = "INVALID_RESULT"  # no result, unreadable result, or schema mismatch
    INVALID_INPUT = "INVALID_INPUT"  # resolved inputs do not match the action's schema
    TEMPLATE_ERROR = "TEMPLATE_ERROR"  # a {{ }} reference could not be resolved
    UNKNOWN_PLUGIN = "UNKNOWN_PLUGIN"
    TIMEOUT = "TIMEOUT"
    RESOURCE_LIMIT = "RESOURCE_LIMIT"  # a restricted task went over a permissions.resources limit
    SANDBOX_FAILED = "SANDBOX_FAILED"  # the sandbox (bubblewrap, docker) could not run the task
    EXECUTION_CANCELLED = "EXECUTION_CANCELLED"
    UPSTREAM_FAILED = "UPSTREAM_FAILED"
    RUN_IF_FALSE = "RUN_IF_FALSE"  # SKIPPED: the task's run_if rendered false
    OUTPUTS_UNAVAILABLE = "OUTPUTS_UNAVAILABLE"  # SKIPPED: it uses outputs of a task that has none (skipped, failure allowed)
    USER_CANCELLED = "USER_CANCELLED"
    ENGINE_LOST = "ENGINE_LOST"  # the engine process died; found by a later start
    DATABASE_ERROR = "DATABASE_ERROR"  # the database refused writes (disk full, read-only, I/O error)
    INTERNAL_ERROR = "INTERNAL_ERROR"
