"""`core/flow.subflow`: a task that runs another workflow as a child execution.

The child is an ordinary execution, enqueued through `Service.enqueue` and linked both ways
(its row names the parent execution and task; `inspect` lists a parent's children). With
`wait: true` it is pinned to this process (claimed and run by this worker, as `run` does)
and the task waits for its end: cancel of the parent cancels the child. With `wait: false`
it goes to the shared queue for any worker (a server) to run, and the task ends at once.
A chain is bounded: `MAX_SUBFLOW_DEPTH` levels, and a workflow may not call itself through
its ancestors (a cycle).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kestra_trio.engine.context import ExecutionResult, RunContext, StopRequest
from kestra_trio.errors import KestraTrioError
from kestra_trio.model.workflow import SubflowCall, Workflow
from kestra_trio.storage.executions import DEFAULT_QUEUE

if TYPE_CHECKING:
    from kestra_trio.service.app import Service

#: how deep subflows may nest (a parent is level 0)
MAX_SUBFLOW_DEPTH = 10


class SubflowRefused(KestraTrioError):
    """The child cannot be started: the subflow task fails with this message."""


class ServiceSubflows:
    """The engine's `SubflowLauncher`, built on the service's enqueue and worker."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def start(self, run: RunContext, task_id: str, call: SubflowCall) -> str:
        service = self.service
        chain = await self._chain(run.execution_id)
        depth = len(chain)
        if depth > MAX_SUBFLOW_DEPTH:
            raise SubflowRefused(f"subflows nest at most {MAX_SUBFLOW_DEPTH} levels deep")
        workflow, path, revision = await self._resolve(run, call)
        if workflow.id in chain:
            path_text = " → ".join([*reversed(chain), workflow.id])
            raise SubflowRefused(f"workflow {workflow.id!r} would call itself ({path_text})")
        if not workflow.enabled:
            raise SubflowRefused(f"workflow {workflow.id!r} is disabled")
        from kestra_trio.model.inputs import coerce_inputs

        try:
            raw = {name: value if isinstance(value, str) else json.dumps(value) for name, value in call.inputs.items()}
            inputs = coerce_inputs(workflow, raw)
        except (KestraTrioError, ValueError) as exc:
            raise SubflowRefused(f"inputs of workflow {workflow.id!r}: {exc}") from None
        return await service.enqueue(
            workflow, inputs, trigger_type="subflow", workflow_path=path, workflow_revision=revision,
            queue=None if call.wait else DEFAULT_QUEUE, on_progress=_ignore,
            trigger={"execution_id": run.execution_id, "task_id": task_id, "workflow_id": run.workflow.id},
            parent=(run.execution_id, task_id, depth),
        )

    async def wait(self, child_id: str) -> ExecutionResult:
        return await self.service.wait(child_id)

    async def stop(self, child_id: str, request: StopRequest) -> None:
        """The parent's task was cancelled: the child stops with the same cause."""
        worker = self.service.worker
        assert worker is not None
        running = worker.running.get(child_id)
        if running is not None:
            running.stop(StopRequest(request.reason, request.by, f"parent execution stopped: {request.message}"))
        else:  # not started yet: a cancel request, which the worker honours as it starts it
            await self.service.store.request_cancel(child_id, request.by, f"parent execution stopped: {request.message}")

    async def _chain(self, execution_id: str) -> list[str]:
        """Workflow ids from this execution up to its root (the execution's own first)."""
        chain: list[str] = []
        current: str | None = execution_id
        while current is not None and len(chain) <= MAX_SUBFLOW_DEPTH:
            row = await self.service.store.get(current)
            if row is None:
                break
            chain.append(row.workflow_id)
            current = row.parent_execution_id
        return chain

    async def _resolve(self, run: RunContext, call: SubflowCall) -> tuple[Workflow, str | None, int]:
        """The child's workflow: a file (relative to the parent's folder) applied to the
        registry as `run FILE` does, or a registered workflow id at its current revision."""
        from kestra_trio.errors import WorkflowError, WorkflowInvalid
        from kestra_trio.model.loading import load_workflow_text
        from kestra_trio.service.registry import load_file, revision_for_run

        service = self.service
        if call.is_path:
            path = Path(call.workflow)
            if not path.is_absolute() and run.workdir is not None:
                path = run.workdir / path
            try:
                loaded = load_file(path, service.registry)
            except WorkflowInvalid as exc:
                first = str(exc.issues[0]) if exc.issues else str(exc)
                raise SubflowRefused(f"{call.workflow}: the workflow is invalid: {first}") from None
            except (WorkflowError, OSError) as exc:
                raise SubflowRefused(f"{call.workflow}: {exc}") from None
            revision = await revision_for_run(service.workflows, loaded)
            return loaded.workflow, str(path.resolve()), revision
        current = await service.workflows.revision(call.workflow)
        if current is None or current.source is None:
            raise SubflowRefused(
                f"no workflow {call.workflow!r} in the registry (`kestra-trio workflow apply FILE`, or give a path)"
            )
        try:
            workflow = load_workflow_text(current.source, f"{call.workflow}@{current.revision}", catalog=service.registry,
                                          source_path=current.source_path)
        except (WorkflowError, WorkflowInvalid) as exc:
            raise SubflowRefused(f"workflow {call.workflow!r} revision {current.revision} no longer loads: {exc}") from None
        return workflow, current.source_path, current.revision


def _ignore(_event: Any) -> None:
    """A child's progress is not shown in the parent's view (its own task lines are its logs)."""
