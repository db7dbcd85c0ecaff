"""What every runtime (process, bubblewrap, docker) takes and returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import trio

from kestra_trio.observability.records import LogEntry
from kestra_trio.plugin_runtime.manifest import ActionSpec, PluginManifest
from kestra_trio.secrets.masking import Masker
from kestra_trio.state.states import Reason


@dataclass(frozen=True, slots=True)
class Invocation:
    """One attempt of one task: everything a runtime needs to run the action."""

    execution_id: str
    task_id: str
    attempt: int
    task_type: str  # namespace/plugin.action
    manifest: PluginManifest
    action: ActionSpec
    inputs: dict[str, Any]
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    workdir: Path | None = None
    #: restricted mode: the task's SandboxPolicy (plugin_runtime.sandbox); None: trusted
    policy: Any = None
    #: the run's masker (all its secrets), for lines cut before the collector masks them;
    #: None: one over ``secrets``
    masker: Masker | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended (a cancelled attempt has no Outcome: Cancelled propagates).

    ``error`` is ``{"message", "type", "exit_code", "signal", "stderr_tail": [...], "stack"?}``.
    """

    ok: bool
    outputs: dict[str, Any] | None = None
    reason_code: Reason | None = None
    error: dict[str, Any] | None = None
    exit_code: int | None = None
    #: `::{"metrics": [...]}::` lines of the attempt (`directives.Metric`), success or not
    metrics: tuple[Any, ...] = ()

    @classmethod
    def success(cls, outputs: dict[str, Any], exit_code: int = 0) -> Outcome:
        return cls(ok=True, outputs=outputs, exit_code=exit_code)

    @classmethod
    def failure(
        cls,
        reason: Reason,
        message: str,
        *,
        type: str = "PluginError",  # noqa: A002
        exit_code: int | None = None,
        signal: str | None = None,
        stderr_tail: list[str] | None = None,
        **extra: Any,
    ) -> Outcome:
        error = {
            "message": message,
            "type": type,
            "exit_code": exit_code,
            "signal": signal,
            "stderr_tail": list(stderr_tail or []),
            **extra,
        }
        return cls(ok=False, reason_code=reason, error=error, exit_code=exit_code)


@dataclass(slots=True)
class ProcessHandle:
    """Handed to the caller (``task_status.started``) right after spawn; updated as it ends."""

    pid: int
    pgid: int
    signal_sent: str | None = None  # "SIGTERM" / "SIGKILL" when we stopped it
    exit_code: int | None = None  # returncode: negative = killed by that signal
    killed_by_us: bool = False
    escalation: str | None = None  # why SIGTERM became SIGKILL: grace period ran out / second signal
    spare: tuple[int, ...] = ()  # group members SIGTERM skips (a sandbox's own supervisors)
    #: the last stderr lines, kept as they are read (a timed-out or cancelled task reports them too)
    stderr_tail: Sequence[str] = ()


class Runtime(Protocol):
    """Runs one attempt. Cancel the caller's scope to stop it: the runtime then kills what it
    started, delivers every log line already written, and re-raises Cancelled."""

    async def run_action(
        self,
        invocation: Invocation,
        *,
        log_send: trio.MemorySendChannel[LogEntry],
        task_status: trio.TaskStatus[ProcessHandle] = trio.TASK_STATUS_IGNORED,
    ) -> Outcome: ...
