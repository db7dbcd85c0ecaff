"""The one place the engine chooses how a task runs: trusted → a plain child process;
restricted → bubblewrap, or Docker (`sandbox: docker`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kestra_trio.plugin_runtime.runtime import Invocation, Runtime
from kestra_trio.plugin_runtime.sandbox import SandboxPolicy
from kestra_trio.storage.sandbox import record_refusal

if TYPE_CHECKING:
    from kestra_trio.engine.runner import ExecutionRun


def runtime_for(run: ExecutionRun, policy: SandboxPolicy | None) -> Runtime:
    common: dict[str, Any] = {
        "reaper": run.reaper, "kill_grace": run.options.kill_grace, "force_kill": run.force_kill,
    }
    if policy is None:
        from kestra_trio.plugin_runtime.process import ProcessRuntime

        return ProcessRuntime(**common)

    async def refused(invocation: Invocation, kind: str, target: str, detail: str) -> None:
        try:
            await record_refusal(
                run.store.db, invocation.execution_id, invocation.task_id, invocation.attempt, kind, target,
                run.masker.mask(detail),
            )
        except Exception as exc:  # the WARN line is already in the log; the task goes on
            run.options.on_error(f"cannot record a sandbox refusal ({exc})")

    if policy.kind == "docker":
        from kestra_trio.plugin_runtime.docker import DockerRuntime

        return DockerRuntime(**common, refused=refused, environ=run.options.environ)
    from kestra_trio.plugin_runtime.bwrap import BwrapRuntime

    return BwrapRuntime(**common, refused=refused, environ=run.options.environ)
