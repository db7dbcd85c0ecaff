"""The one place the engine chooses how a task runs: trusted → a plain child process;
restricted → bubblewrap, or Docker (`sandbox: docker`).

The service builds one `RuntimeFactory` per process (it owns the watchdog and the stop
events); an attempt asks it for the runtime of its task's sandbox policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from kestra_trio.plugin_runtime.runtime import Invocation, Runtime
from kestra_trio.plugin_runtime.sandbox import SandboxPolicy
from kestra_trio.storage.sandbox import record_refusal

if TYPE_CHECKING:
    from kestra_trio.engine.context import RunContext


class RuntimeFactory:
    """Runtimes sharing the process's watchdog, kill grace and force-kill event."""

    def __init__(
        self, *, reaper: Any, kill_grace: float, force_kill: trio.Event, environ: Mapping[str, str] | None = None
    ) -> None:
        self._common: dict[str, Any] = {"reaper": reaper, "kill_grace": kill_grace, "force_kill": force_kill}
        self._environ = environ
        from kestra_trio.plugin_runtime.process import ProcessRuntime

        self._trusted = ProcessRuntime(**self._common)

    def __call__(self, run: RunContext, policy: SandboxPolicy | None) -> Runtime:
        if policy is None:
            return self._trusted

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

            return DockerRuntime(**self._common, refused=refused, environ=self._environ)
        from kestra_trio.plugin_runtime.bwrap import BwrapRuntime

        return BwrapRuntime(**self._common, refused=refused, environ=self._environ)
