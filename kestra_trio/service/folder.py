"""A server's `--workflows DIR`: applied at start, then again whenever a file changes.

Changes are found by comparing each file's (mtime, size) every `FOLDER_POLL_SECONDS` — one
`stat` per file, no parse — and only a changed folder is loaded and applied (an unchanged
text stores no revision). A file that does not validate is reported once (until it changes)
and its workflow keeps its current revision. A workflow whose file left the folder is
disabled (and enabled again when a file brings its id back); an operator's disable stays.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from kestra_trio.service.registry import apply_loaded, load_files, workflow_files
from kestra_trio.storage.workflows import WorkflowStore

#: how often the folder is looked at (a stat per file)
FOLDER_POLL_SECONDS = 1.0

Signature = dict[Path, tuple[int, int]]


class WorkflowFolder:
    def __init__(
        self, store: WorkflowStore, plugins: Any, directory: Path, *,
        on_error: Callable[[str], None], on_info: Callable[[str], None] = lambda _: None,
        on_change: Callable[[], None] = lambda: None, poll_seconds: float = FOLDER_POLL_SECONDS,
    ) -> None:
        self.store = store
        self.plugins = plugins
        self.directory = directory
        self.root = str(directory.resolve())
        self.on_error = on_error
        self.on_info = on_info
        self.on_change = on_change
        self.poll_seconds = poll_seconds
        self._seen: Signature | None = None
        self._reported: dict[Path, tuple[str, ...]] = {}
        self._missing = False
        self._failure: str | None = None

    def signature(self) -> Signature:
        found: Signature = {}
        for path in workflow_files([self.directory]):
            try:
                stat = path.stat()
            except OSError:  # removed between the listing and the stat
                continue
            found[path] = (stat.st_mtime_ns, stat.st_size)
        return found

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._sync_reporting()
        task_status.started()
        while True:
            await trio.sleep(self.poll_seconds)
            await self._sync_reporting()

    async def _sync_reporting(self) -> None:
        """`sync`, reporting a failure (a locked or broken database) once until it changes;
        the next look tries again."""
        try:
            await self.sync()
            self._failure = None
        except Exception as exc:
            self._seen = None
            message = f"--workflows {self.directory}: cannot apply ({exc})"
            if message != self._failure:
                self._failure = message
                self.on_error(message)

    async def sync(self) -> None:
        """Apply the folder if it changed since the last look."""
        if not self.directory.is_dir():  # (misconfigured or unmounted: disable nothing)
            if not self._missing:
                self._missing = True
                self.on_error(f"--workflows {self.directory}: not a readable directory; the registry stays as it is")
            return
        self._missing = False
        current = self.signature()
        if current == self._seen:
            return
        loaded, problems = load_files(sorted(current), self.plugins)
        broken = {str(problem.path.resolve()) for problem in problems}
        for problem in problems:
            if self._reported.get(problem.path) != problem.lines:
                self._reported[problem.path] = problem.lines
                self.on_error(
                    f"--workflows: {problem.path} is not applied, the registry keeps its current revision: "
                    + "; ".join(problem.lines)
                )
        for path in [p for p in self._reported if str(p.resolve()) not in broken]:
            del self._reported[path]
        for applied in await apply_loaded(self.store, loaded):
            if applied.created:
                self.on_info(f"workflow {applied.workflow_id}: revision {applied.revision} applied from --workflows")
        present = {item.workflow.id for item in loaded}
        folder_disabled = await self.store.folder_disabled()
        for workflow_id in present & folder_disabled.keys():
            if await self.store.folder_enable(workflow_id):
                self.on_info(f"workflow {workflow_id}: enabled again (its file is back in --workflows)")
        for row in await self.store.list():
            path = row.source_path
            if (row.enabled and row.id not in present and path is not None and path not in broken
                    and path.startswith(self.root + os.sep)):
                if await self.store.folder_disable(row.id, path):
                    self.on_info(f"workflow {row.id}: disabled, its file {path} left --workflows")
        self._seen = current
        self.on_change()
