"""Build executions, task runs, attempts, audit events and logs through the REAL storage API.

Used by tests/cli, tests/inspection and tests/e2e (and by the writer subprocess of the
`--follow` e2e test). Timestamps are explicit (Unix ms) so rendered output is exact.

    async with open_database(path) as db:
        ex = ExecutionFactory(db, "ex-1", t0=T0)
        await ex.create([task("a"), task("b", needs=["a"])])
        await ex.start()
        await ex.run_task("a", start=100, end=600)          # offsets from t0
        await ex.fail_task("b", start=700, end=900, exit_code=2, stderr_tail=["boom"])
        await ex.finish("FAILED", at=1000)
        await ex.logs([(150, "INFO", "a", "hello")])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kestra_trio.observability.records import LogEntry, LogLevel
from kestra_trio.state.states import State
from kestra_trio.storage.db import Database
from kestra_trio.storage.executions import AttemptWrite, ExecutionStore, NewExecution, NewTaskRun, StateChange
from kestra_trio.storage.logs import LogStore

#: 2026-11-21T10:15:30.000Z
T0 = 1_795_256_130_000


def task(
    task_id: str, *, type: str = "core/shell.run", needs: Sequence[str] = (), max_attempts: int = 1
) -> NewTaskRun:
    return NewTaskRun(task_id=task_id, position=0, type=type, needs=tuple(needs), max_attempts=max_attempts, timeout_ms=None)


class ExecutionFactory:
    def __init__(self, db: Database, execution_id: str, *, workflow_id: str = "hello", t0: int = T0) -> None:
        self.db = db
        self.id = execution_id
        self.workflow_id = workflow_id
        self.t0 = t0
        self.store = ExecutionStore(db)
        self.log_store = LogStore(db)

    async def create(
        self,
        tasks: Sequence[NewTaskRun],
        *,
        inputs: dict[str, Any] | None = None,
        engine_pid: int | None = None,
        engine_host: str | None = None,
        created_at: int | None = None,
    ) -> None:
        numbered = [
            NewTaskRun(t.task_id, i, t.type, t.needs, t.max_attempts, t.timeout_ms) for i, t in enumerate(tasks)
        ]
        await self.store.create(
            NewExecution(
                id=self.id,
                workflow_id=self.workflow_id,
                namespace="default",
                trigger_type="manual",
                inputs=inputs or {},
                workflow_path=None,
                timeout_ms=None,
                engine_pid=engine_pid,
                engine_host=engine_host,
            ),
            numbered,
            at=self.t0 if created_at is None else created_at,  # never the wall clock: tests must not age
        )

    async def start(self, at: int = 0) -> None:
        await self.store.apply(
            StateChange(self.id, State.RUNNING, "STARTED", fields={"started_at": self.t0 + at}, at=self.t0 + at)
        )

    async def finish(self, state: str = "SUCCESS", *, at: int, message: str | None = None, **fields: Any) -> None:
        reason = {"SUCCESS": "COMPLETED", "FAILED": "TASK_FAILED", "CANCELLED": "USER_CANCELLED"}[state]
        await self.store.apply(
            StateChange(
                self.id, State(state), reason, message=message,
                fields={"ended_at": self.t0 + at, **fields}, at=self.t0 + at,
            )
        )

    async def start_task(self, task_id: str, *, start: int, attempt: int = 1, inputs: dict | None = None) -> None:
        """PENDING/WAITING → RUNNING with attempt `attempt` running."""
        at = self.t0 + start
        fields: dict[str, Any] = {"attempt_count": attempt}
        if attempt == 1:
            fields["started_at"] = at
        if inputs is not None:
            fields["inputs"] = inputs
        await self.store.apply(
            StateChange(
                self.id, State.RUNNING, "STARTED", task_id=task_id, fields=fields, at=at,
                attempt=AttemptWrite(number=attempt, state="RUNNING", started_at=at, pid=4242),
            )
        )

    async def end_task(
        self,
        task_id: str,
        state: str,
        *,
        end: int,
        attempt: int = 1,
        attempt_start: int,
        reason: str | None = None,
        message: str | None = None,
        outputs: dict | None = None,
        error: dict | None = None,
        exit_code: int | None = None,
        signal: str | None = None,
        task_start: int | None = None,
    ) -> None:
        at = self.t0 + end
        reason = reason or {"SUCCESS": "COMPLETED", "FAILED": "PLUGIN_FAILED", "CANCELLED": "EXECUTION_CANCELLED"}[state]
        fields: dict[str, Any] = {"ended_at": at}
        if task_start is not None:
            fields["duration_ms"] = end - task_start
        if outputs is not None:
            fields["outputs"] = outputs
        if error is not None:
            fields["error"] = error
        await self.store.apply(
            StateChange(
                self.id, State(state), reason, message=message, task_id=task_id, fields=fields, at=at,
                attempt=AttemptWrite(
                    number=attempt, state=state, started_at=self.t0 + attempt_start, reason_code=reason,
                    message=message, exit_code=exit_code, signal=signal, ended_at=at,
                ),
            )
        )

    async def retry_task(self, task_id: str, *, attempt_start: int, end: int, attempt: int = 1, exit_code: int = 1,
                         message: str = "exit code 1") -> None:
        """A failed attempt followed by a backoff wait (RUNNING → WAITING/BACKOFF)."""
        at = self.t0 + end
        await self.store.apply(
            StateChange(
                self.id, State.WAITING, "BACKOFF", message=message, task_id=task_id, at=at,
                attempt=AttemptWrite(
                    number=attempt, state="FAILED", started_at=self.t0 + attempt_start, reason_code="PLUGIN_FAILED",
                    message=message, exit_code=exit_code, ended_at=at,
                ),
            )
        )

    async def run_task(self, task_id: str, *, start: int, end: int, outputs: dict | None = None,
                       inputs: dict | None = None) -> None:
        await self.start_task(task_id, start=start, inputs=inputs)
        await self.end_task(task_id, "SUCCESS", end=end, attempt_start=start, outputs=outputs, task_start=start)

    async def fail_task(self, task_id: str, *, start: int, end: int, exit_code: int = 1, message: str = "exit code 1",
                        stderr_tail: Sequence[str] = (), inputs: dict | None = None) -> None:
        await self.start_task(task_id, start=start, inputs=inputs)
        await self.end_task(
            task_id, "FAILED", end=end, attempt_start=start, message=message, exit_code=exit_code, task_start=start,
            error={"message": message, "reason_code": "PLUGIN_FAILED", "exit_code": exit_code,
                   "stderr_tail": list(stderr_tail)},
        )

    async def logs(self, entries: Iterable[tuple], *, batch: int = 1000) -> None:
        """`(offset_ms, level, task_id, message[, source[, metadata]])` tuples, inserted in batches."""
        buffer: list[LogEntry] = []
        for entry in entries:
            offset, level, task_id, message, *rest = entry
            source = rest[0] if rest else ("plugin:core/shell.run" if task_id else "scheduler")
            metadata = rest[1] if len(rest) > 1 else {}
            buffer.append(LogEntry(self.id, task_id, LogLevel(level), source, message, metadata, self.t0 + offset))
            if len(buffer) >= batch:
                await self.log_store.insert_batch(buffer)
                buffer = []
        if buffer:
            await self.log_store.insert_batch(buffer)


async def simple_success(db: Database, execution_id: str = "ex-success", *, t0: int = T0) -> ExecutionFactory:
    """hello: `a` (500 ms) → `b` (2 s), SUCCESS, four log lines."""
    ex = ExecutionFactory(db, execution_id, t0=t0)
    await ex.create([task("a"), task("b", needs=["a"])], inputs={"name": "world"})
    await ex.start(0)
    await ex.run_task("a", start=100, end=600, inputs={"command": "echo hello"}, outputs={"stdout": "hello"})
    await ex.run_task("b", start=700, end=2700, inputs={"token": "***SECRET***"}, outputs={"rows": 3})
    await ex.finish("SUCCESS", at=2800)
    await ex.logs(
        [
            (0, "INFO", None, "execution started", "scheduler"),
            (150, "INFO", "a", "hello"),
            (900, "WARN", "b", "slow disk"),
            (2600, "DEBUG", "b", "rows=3", "plugin:core/shell.run", {"rows": 3}),
        ]
    )
    return ex
