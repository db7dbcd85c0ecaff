"""The enabled workflows of the registry, parsed once per revision, for the trigger services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kestra_trio.model.workflow import Workflow
from kestra_trio.storage.workflows import WorkflowStore


@dataclass(frozen=True, slots=True)
class ActiveWorkflow:
    """An enabled workflow's latest revision, as its triggers start it."""

    revision: int
    workflow: Workflow


class TriggerCatalog:
    """Reads the registry (one query) and parses each revision once; a revision that no longer
    loads (a plugin was removed) is reported once and its triggers stay quiet."""

    def __init__(self, store: WorkflowStore, plugins: Any, on_error: Callable[[str], None]) -> None:
        self.store = store
        self.plugins = plugins
        self.on_error = on_error
        self._parsed: dict[tuple[str, int], Workflow | None] = {}

    async def load(self) -> list[ActiveWorkflow]:
        """The enabled workflows that have triggers, at their latest revision."""
        active: list[ActiveWorkflow] = []
        current: set[tuple[str, int]] = set()
        for row in await self.store.list():
            if not row.enabled:
                continue
            current.add((row.id, row.revision))
            workflow = await self._workflow(row.id, row.revision)
            if workflow is not None and workflow.triggers:
                active.append(ActiveWorkflow(row.revision, workflow))
        for key in self._parsed.keys() - current:  # older revisions: the cache stays as large as the registry
            del self._parsed[key]
        return active

    async def _workflow(self, workflow_id: str, revision: int) -> Workflow | None:
        key = (workflow_id, revision)
        if key not in self._parsed:
            from kestra_trio.errors import WorkflowError, WorkflowInvalid
            from kestra_trio.model.loading import load_workflow_text

            stored = await self.store.revision(workflow_id, revision)
            try:
                if stored is None or stored.source is None:
                    raise WorkflowError("its source is not in the registry")
                self._parsed[key] = load_workflow_text(
                    stored.source, f"{workflow_id}@{revision}", catalog=self.plugins, source_path=stored.source_path
                )
            except (WorkflowError, WorkflowInvalid) as exc:
                self.on_error(f"workflow {workflow_id} revision {revision} does not load; its triggers stay off: {exc}")
                self._parsed[key] = None
        return self._parsed[key]
