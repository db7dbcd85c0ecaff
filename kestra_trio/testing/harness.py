"""`kt`: the service `kestra-trio run` uses, on a temporary database and plugin path, driven
from a test. `open_harness` starts it inside the test's trio run; `kt.run` enqueues one
execution on the service's private queue, waits, and reads the result back through the same
inspector `execution inspect` uses."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import trio
import yaml

from kestra_trio.config import SECRET_ENV_PREFIX
from kestra_trio.engine.context import EngineOptions
from kestra_trio.inspection.inspector import ExecutionInspector
from kestra_trio.model.inputs import coerce_inputs
from kestra_trio.observability.records import LogEntry
from kestra_trio.plugin_runtime.registry import PluginRegistry
from kestra_trio.plugin_runtime.runtime import Invocation
from kestra_trio.query.logs import log_pages
from kestra_trio.secrets.masking import Masker
from kestra_trio.service.app import Service, ServiceConfig, new_execution_id, open_service
from kestra_trio.service.registry import load_file, revision_for_run
from kestra_trio.storage.db import open_database
from kestra_trio.storage.logs import LogFilter
from kestra_trio.storage.rows import LogRow
from kestra_trio.testing.clock import RealTimeDatabase, TimeSkipping
from kestra_trio.testing.results import ActionResult, ExecutionResult
from kestra_trio.testing.runtimes import HarnessRuntimes, parse_mocks

#: `execution cancel` rows are looked for this often (nothing outside a test cancels its runs;
#: a short poll would cost a query per skipped fifth of a second)
CANCEL_POLL_SECONDS = 60.0

Workflow = str | os.PathLike[str] | Mapping[str, Any]


class KestraTrio:
    """The `kt` fixture. Build it with `open_harness`."""

    def __init__(self, service: Service, root: Path, time: TimeSkipping, runtimes: HarnessRuntimes, environ: dict[str, str]) -> None:
        self.service = service
        self.root = root
        #: drop plugin folders here (or call `add_plugins`): the harness's plugin path
        self.plugin_dir = root / "plugins"
        self.db_path = root / "kt.db"
        self.time = time
        self._runtimes = runtimes
        self._environ = environ
        self._inline = itertools.count(1)

    @property
    def registry(self) -> PluginRegistry:
        return self.service.registry

    def add_plugins(self, directory: str | os.PathLike[str]) -> None:
        """A plugin folder (with plugin.yaml) or a folder of them, for the runs that follow."""
        path = Path(directory)
        if not path.is_dir():
            raise FileNotFoundError(f"plugin directory {path} does not exist")
        self.registry.add_dir(path)

    # ------------------------------------------------------------------ workflows
    async def run(
        self,
        workflow: Workflow,
        *,
        inputs: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        mocks: Mapping[str, Any] | None = None,
    ) -> ExecutionResult:
        """Run a workflow (a file path, YAML text, or a dict) to its end and read it back.

        `inputs`: strings are parsed as on the command line, other values are checked as typed.
        `secrets`: name → value, as `KESTRA_TRIO_SECRET_<NAME>` would give them.
        `mocks`: task id → `{"outputs": {...}}` | `{"fail": "message"}` (optionally
        `"duration": seconds`), or a list of those, one per attempt (the last one repeats).
        """
        __tracebackhide__ = True  # a bad workflow or mock: pytest shows the test's line
        loaded = load_file(self._workflow_file(workflow), self.registry)
        spec = loaded.workflow
        # text is parsed as on the command line; other values are checked as their JSON text
        values = coerce_inputs(spec, {k: v if isinstance(v, str) else json.dumps(v) for k, v in (inputs or {}).items()})
        mocked = parse_mocks(mocks or {}, {t.id: t.type for t in spec.tasks}, self.registry)
        service = self.service
        revision = await revision_for_run(service.workflows, loaded)
        execution_id = new_execution_id()
        self._runtimes.mocks[execution_id] = mocked
        try:
            # `enqueue` resolves the secrets from the options' environment before its first await
            service.options.environ = {**self._environ, **_secret_environ(secrets or {})}
            try:
                await service.enqueue(
                    spec, values, workflow_path=str(loaded.path), workflow_revision=revision, execution_id=execution_id
                )
            finally:
                service.options.environ = self._environ
            await service.wait(execution_id)
        finally:
            self._runtimes.mocks.pop(execution_id, None)
        return await self.result(execution_id)

    async def result(self, execution_id: str) -> ExecutionResult:
        """Any execution of this harness's database, as `inspect` reads it, with its whole log."""
        await self.service.collector.flush()
        snapshot = await ExecutionInspector(self.service.db).snapshot(execution_id)
        rows: list[LogRow] = []
        async for page in log_pages(self.service.db, LogFilter(snapshot.execution.id)):
            rows.extend(LogRow(i, snapshot.execution.id, t, ts, lvl, src, msg, _metadata(meta))
                        for i, t, ts, lvl, src, msg, meta in page)
        return ExecutionResult(snapshot, rows)

    def _workflow_file(self, workflow: Workflow) -> Path:
        if isinstance(workflow, Mapping):
            text = yaml.safe_dump(dict(workflow), sort_keys=False, allow_unicode=True)
        elif isinstance(workflow, str) and "\n" in workflow:
            text = workflow
        else:
            path = Path(workflow)
            if not path.is_file():
                raise FileNotFoundError(f"workflow file {path} does not exist (give a path, YAML text or a dict)")
            return path
        inline = self.root / "workflows" / f"inline-{next(self._inline)}.yaml"
        inline.parent.mkdir(exist_ok=True)
        inline.write_text(text, encoding="utf-8")
        return inline

    # ------------------------------------------------------------------ one action
    async def action(
        self,
        task_type: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        secrets: Mapping[str, str] | None = None,
        workdir: str | os.PathLike[str] | None = None,
    ) -> ActionResult:
        """Run one plugin action (`"ns/plugin.action"`) in a real child process, as one attempt
        of a task would, and return its outputs, log entries and exit code."""
        manifest, action = self.registry.resolve(task_type)
        secrets = dict(secrets or {})
        masker = Masker(secrets.values())
        invocation = Invocation(
            execution_id=f"action-{new_execution_id()}", task_id=action.name, attempt=1, task_type=task_type,
            manifest=manifest, action=action, inputs=dict(inputs or {}), secrets=secrets,
            workdir=Path(workdir) if workdir is not None else self.root, masker=masker,
        )
        send, receive = trio.open_memory_channel[LogEntry](math.inf)
        runtime = self._runtimes.inner(None, None)  # type: ignore[arg-type]  # trusted: no run context needed
        with self.time.real_time():
            async with send:
                outcome = await runtime.run_action(invocation, log_send=send)
        entries: list[LogEntry] = []
        async with receive:
            async for sent in receive:  # an entry, or a batch of them
                for entry in sent if isinstance(sent, list) else [sent]:
                    entry.message = masker.mask(entry.message)
                    entry.metadata = masker.mask_value(entry.metadata)
                    entries.append(entry)
        error = masker.mask_value(outcome.error) if outcome.error is not None else None
        return ActionResult(
            task_type=task_type, ok=outcome.ok,
            outputs=masker.mask_value(outcome.outputs) if outcome.outputs is not None else None,
            exit_code=outcome.exit_code, reason_code=outcome.reason_code.value if outcome.reason_code else None,
            error=error, entries=entries,
        )


def _secret_environ(secrets: Mapping[str, str]) -> dict[str, str]:
    for name, value in secrets.items():
        if not isinstance(value, str):
            raise TypeError(f"secret {name!r}: a secret is text, got {type(value).__name__}")
    return {SECRET_ENV_PREFIX + name: value for name, value in secrets.items()}


def _metadata(stored: str | None) -> dict[str, Any] | None:
    if stored is None:
        return None
    try:
        return json.loads(stored)
    except ValueError:
        return {"_unreadable": stored}


@contextlib.asynccontextmanager
async def open_harness(
    root: str | os.PathLike[str], *, plugin_dirs: Sequence[str | os.PathLike[str]] = (), max_parallel: int = 8
) -> AsyncIterator[KestraTrio]:
    """A service on `root/kt.db` with plugins from the package, KESTRA_TRIO_PLUGIN_PATH,
    `plugin_dirs` and `root/plugins`. Call inside a trio run; under a `MockClock` (pytest-trio's
    `autojump_clock`) the engine's waits skip (see `kestra_trio.testing.clock`)."""
    root = Path(root)
    (root / "plugins").mkdir(parents=True, exist_ok=True)
    # the developer's own secrets never reach a test: a test names the secrets it uses
    environ = {k: v for k, v in os.environ.items() if not k.startswith(SECRET_ENV_PREFIX)}
    registry = PluginRegistry.discover(extra_dirs=[*map(Path, plugin_dirs), root / "plugins"], environ=environ)
    time = TimeSkipping(trio.lowlevel.current_clock())
    holder: list[HarnessRuntimes] = []

    def wrap(inner: Any) -> HarnessRuntimes:
        holder.append(HarnessRuntimes(inner, time))
        return holder[0]

    options = EngineOptions(
        max_parallel=max_parallel, handle_signals=False, environ=environ, cancel_poll_interval=CANCEL_POLL_SECONDS,
    )
    config = ServiceConfig(root / "kt.db", registry, options, wrap_runtimes=wrap)
    with time.recorded_timestamps():
        time.hold()  # starting and closing the service is real work: no skipping there
        try:
            async with open_database(config.db_path) as db, open_service(config, db=RealTimeDatabase(db, time)) as service:
                time.release()
                try:
                    yield KestraTrio(service, root, time, holder[0], environ)
                finally:
                    time.hold()
        finally:
            time.release()
